//! The OCR example (`examples/ocr/aimass.toml`, as it is, with the test
//! build's plugins and the fetched models) on the real server: a generated
//! page posted as PNG bytes comes back as text, boxes and the cascade stage
//! of each line, over REST and gRPC; what is not an image is refused naming
//! the input; a blank page has no lines; and `aimass eval`'s text scores on
//! a generated set.
//!
//! They need the models (`AIMASS_OCR_MODELS`, from
//! `examples/ocr/fetch_models.py`) and a Python with Pillow
//! (`AIMASS_PYTHON`) to draw the pages; elsewhere they are reported as
//! ignored. CI provides both.

use aimass::server::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use aimass::server::grpc::proto::{self as pb, model_infer_request::InferInputTensor};
use aimass::tensor::strings;
use aimass_tests::{TestServer, ocr_models_dir, output, temp_dir};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The example's config with the test build's plugins, the fetched models
/// and a cache of its own, written to `dir`.
fn example_config(dir: &Path) -> PathBuf {
    let plugins = Path::new(aimass_test_artifacts::OCR_DETECT)
        .parent()
        .unwrap()
        .display()
        .to_string();
    let text = std::fs::read_to_string(root().join("examples/ocr/aimass.toml"))
        .unwrap()
        .replace(
            "\"../../target/wasm32-wasip2/release/",
            &format!("\"{plugins}/"),
        )
        .replace("\"models/", &format!("\"{}/", ocr_models_dir().display()))
        .replace(
            "\"../../target/aimass-cache\"",
            &format!("\"{}\"", dir.join("cache").display()),
        );
    // The build commands are for `serve --build`; the test built them.
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("build = "))
        .map(|l| format!("{l}\n"))
        .collect();
    let path = dir.join("aimass.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Pages drawn by `examples/ocr/make_pages.py` into `dir`, and their labels.
fn pages(dir: &Path, count: u32, seed: u32) -> Value {
    let python = std::env::var("AIMASS_PYTHON").expect("AIMASS_PYTHON (with Pillow)");
    let status = std::process::Command::new(python)
        .arg(root().join("examples/ocr/make_pages.py"))
        .args(["--out", &dir.display().to_string()])
        .args(["--pages", &count.to_string(), "--seed", &seed.to_string()])
        .args(["--max-height", "480"])
        .status()
        .unwrap();
    assert!(status.success(), "make_pages.py failed");
    serde_json::from_slice(&std::fs::read(dir.join("labels.json")).unwrap()).unwrap()
}

async fn post_image(server: &TestServer, model: &str, image: &[u8]) -> (u16, Value) {
    let element = strings::encode(&[image]).unwrap();
    let header = json!({"inputs": [{"name": "image", "shape": [1],
        "datatype": "BYTES", "parameters": {"binary_data_size": element.len()}}]});
    let (status, answer, _) = server.post_binary(model, &header, &element).await;
    (status, answer)
}

fn squeezed(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(aimass_ocr, aimass_python)),
    ignore = "needs AIMASS_OCR_MODELS (examples/ocr/fetch_models.py) and AIMASS_PYTHON (Pillow)"
)]
async fn a_page_is_read_over_rest_and_grpc() {
    let dir = temp_dir("ocr");
    let labels = pages(&dir.join("pages"), 1, 7);
    let server = TestServer::start_file(example_config(&dir)).await;
    let page = &labels[0];
    let png = std::fs::read(dir.join("pages").join(page["file"].as_str().unwrap())).unwrap();
    let truth: Vec<String> = page["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| squeezed(l["text"].as_str().unwrap()))
        .collect();

    let (status, answer) = post_image(&server, "ocr", &png).await;
    assert_eq!(status, 200, "{answer}");
    let text = output(&answer, "text");
    assert_eq!(text["datatype"], "BYTES");
    let read: Vec<String> = text["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| squeezed(t.as_str().unwrap()))
        .collect();
    let lines = read.len();
    assert_eq!(output(&answer, "boxes")["shape"], json!([lines, 4, 2]));
    let stages = output(&answer, "stage")["data"].as_array().unwrap().clone();
    assert!(stages.iter().all(|s| s == 0 || s == 1), "{stages:?}");
    // Real models on real pages: most lines read exactly (spaces aside).
    let right = truth.iter().filter(|t| read.contains(t)).count();
    assert!(
        right * 10 >= truth.len() * 7,
        "{right} of {} lines read; truth {truth:?}, read {read:?}",
        truth.len()
    );

    // The example README's curl, as printed, on its sample image.
    let readme = std::fs::read_to_string(root().join("examples/ocr/README.md")).unwrap();
    let curl = readme
        .split("```sh\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap_or_default())
        .find(|b| b.contains("curl "))
        .expect("a curl command in examples/ocr/README.md")
        .replace("127.0.0.1:8000", server.base.trim_start_matches("http://"));
    let ran = tokio::task::spawn_blocking({
        let curl = curl.clone();
        move || {
            std::process::Command::new("sh")
                .args(["-c", &curl])
                .current_dir(root())
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let sample: Value = serde_json::from_slice(&ran.stdout)
        .unwrap_or_else(|e| panic!("{curl}: {e}: {}", String::from_utf8_lossy(&ran.stdout)));
    let sample_text: Vec<String> = output(&sample, "text")["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| squeezed(t.as_str().unwrap()))
        .collect();
    let printed = [
        "Country payment thing big they",
        "after could their.",
        "21822 then country",
        "Sound is now little each",
        "sun most form 61937 off.",
        "air never and me as",
    ];
    let right = printed
        .iter()
        .filter(|p| sample_text.contains(&squeezed(p)))
        .count();
    assert!(right >= 5, "{sample_text:?}");
    assert!(readme.contains(&format!("\"shape\":[{}]", sample_text.len())));

    // The same page over gRPC, as BYTES contents.
    let mut grpc = GrpcInferenceServiceClient::connect(server.grpc.clone())
        .await
        .unwrap();
    let request = pb::ModelInferRequest {
        model_name: "ocr".into(),
        inputs: vec![InferInputTensor {
            name: "image".into(),
            datatype: "BYTES".into(),
            shape: vec![1],
            contents: Some(pb::InferTensorContents {
                bytes_contents: vec![png.clone().into()],
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let answer = grpc.model_infer(request).await.unwrap().into_inner();
    let at = answer
        .outputs
        .iter()
        .position(|o| o.name == "text")
        .unwrap();
    let over_grpc: Vec<String> = strings::elements(&answer.raw_output_contents[at])
        .map(|e| squeezed(&String::from_utf8_lossy(e)))
        .collect();
    assert_eq!(over_grpc, read, "the same answer over both transports");

    // Not an image: the client's fault, naming the input.
    let (status, answer) = post_image(&server, "ocr", b"GIF89a not really").await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("input `image`"),
        "{answer}"
    );
    // A blank page: no lines, not an error.
    let blank = std::fs::read(dir.join("pages/page-000.png")).unwrap();
    let white = blank_png(&blank);
    let (status, answer) = post_image(&server, "ocr-v4", &white).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(output(&answer, "text")["shape"], json!([0]));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A white PNG of the same size as `png`, drawn by Pillow.
fn blank_png(png: &[u8]) -> Vec<u8> {
    let python = std::env::var("AIMASS_PYTHON").expect("AIMASS_PYTHON");
    let dir = temp_dir("blank");
    let (from, to) = (dir.join("in.png"), dir.join("out.png"));
    std::fs::write(&from, png).unwrap();
    let script = "import sys; from PIL import Image; \
                  Image.new('RGB', Image.open(sys.argv[1]).size, 'white').save(sys.argv[2])";
    let status = std::process::Command::new(python)
        .args(["-c", script])
        .arg(&from)
        .arg(&to)
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = std::fs::read(&to).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(aimass_ocr, aimass_python)),
    ignore = "needs AIMASS_OCR_MODELS (examples/ocr/fetch_models.py) and AIMASS_PYTHON (Pillow)"
)]
async fn eval_scores_text_detection_and_the_cascade() {
    let dir = temp_dir("ocr-eval");
    pages(&dir.join("pages"), 2, 11);
    let config = example_config(&dir);
    let repository = aimass::repository::Repository::open(&config).await.unwrap();
    let served = repository.models.get("ocr").unwrap();
    let report = aimass::eval::evaluate_text(served, &dir.join("pages"))
        .await
        .unwrap();
    eprintln!("{}", aimass::eval::render_text(&report));
    assert_eq!(report.images, 2);
    assert!(report.recall >= 0.8, "{report:?}");
    assert!(report.precision >= 0.8, "{report:?}");
    assert!(report.exact_ignoring_spaces >= 0.6, "{report:?}");
    assert!(report.cer < 0.2, "{report:?}");
    let stages = report
        .stages
        .clone()
        .expect("the cascade reports its stages");
    let total: f64 = stages.iter().map(|(_, share)| share).sum();
    assert!((total - 1.0).abs() < 1e-9, "{stages:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
