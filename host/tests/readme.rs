//! Does what the README shows, as printed: its serve command (with the
//! test's binary and a free port), its curl command, and (when a Python with
//! tritonclient is at hand) its tritonclient example; then SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The README's fenced blocks of `language`.
fn blocks(readme: &str, language: &str) -> Vec<String> {
    let fence = format!("```{language}\n");
    readme
        .split(&fence)
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap_or_default().to_string())
        .collect()
}

/// What `code` prints, run by `python` in `dir`; it must succeed.
fn run_python(python: &str, code: &str, dir: &Path) -> String {
    let output = Command::new(python)
        .arg("-c")
        .arg(code)
        .current_dir(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_serves_and_answers_as_printed() {
    let root = repository_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let shell = blocks(&readme, "sh");
    let serve = shell
        .iter()
        .find(|b| b.contains(" serve "))
        .expect("a serve command in the README");
    let (_, args) = serve
        .trim()
        .split_once("cargo run --release -p aimass -- ")
        .expect("the serve command runs the aimass binary");
    let mut child = Command::new(env!("CARGO_BIN_EXE_aimass"))
        .args(args.split_whitespace())
        .args(["--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0"])
        .current_dir(&root)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Its log says where it listens; the rest is kept for a failure message.
    let (found, address) = mpsc::channel();
    let (found_grpc, grpc_address) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some((_, addr)) = line.split_once("listening on http://") {
                let _ = found.send(addr.trim().to_string());
            }
            if let Some((_, addr)) = line.split_once("gRPC on ") {
                let _ = found_grpc.send(addr.trim().to_string());
            }
            kept.lock().unwrap().push_str(&format!("{line}\n"));
        }
    });
    // --build compiles the plugins first: minutes on a fresh clone.
    let address = address
        .recv_timeout(Duration::from_secs(900))
        .unwrap_or_else(|_| panic!("no address; log:\n{}", log.lock().unwrap()));
    let client = reqwest::Client::new();
    let started = Instant::now();
    while !client
        .get(format!("http://{address}/v2/health/ready"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the server exited:\n{}",
            log.lock().unwrap()
        );
        assert!(started.elapsed() < Duration::from_secs(120), "not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The curl command, as printed, but at the test's port.
    let curl = shell
        .iter()
        .find(|b| b.contains("curl "))
        .expect("a curl command");
    let curl = curl.trim().replace("127.0.0.1:8000", &address);
    let output = Command::new("sh")
        .arg("-c")
        .arg(&curl)
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{curl}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)));
    // The image is a real test image; its label is in the test split.
    let request: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("examples/digits/request.json")).unwrap())
            .unwrap();
    let pixels: Vec<String> = request["inputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect();
    let csv = std::fs::read_to_string(root.join("examples/digits/data/test.csv")).unwrap();
    let label: i64 = csv
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{},", pixels.join(","))))
        .expect("request.json is a row of test.csv")
        .parse()
        .unwrap();
    // No id in the example: each request is captured under its own.
    assert!(answer.get("id").is_none(), "{answer}");
    assert_eq!(answer["outputs"][0]["name"], "label");
    assert_eq!(answer["outputs"][0]["data"], serde_json::json!([label]));
    assert!(readme.contains(&format!("the answer is `{label}`")));

    // The feedback command, as printed: the example captures `digits`.
    let feedback = shell
        .iter()
        .find(|b| b.contains("/feedback"))
        .expect("a feedback command");
    // (Its JSON is in a shell string: quotes escaped.)
    assert!(
        feedback
            .replace('\\', "")
            .contains(&format!("\"label\": {label}"))
    );
    let output = Command::new("sh")
        .arg("-c")
        .arg(feedback.trim().replace("127.0.0.1:8000", &address))
        .output()
        .unwrap();
    let stored: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)));
    let id = stored["id"].as_str().unwrap_or_default();
    assert!(
        id.len() > 8,
        "feedback for the fresh id read back: {stored}"
    );

    // The tritonclient examples (HTTP, then gRPC), as printed, at the
    // test's ports.
    let grpc_address = grpc_address
        .recv_timeout(Duration::from_secs(10))
        .expect("the log names the gRPC address");
    let examples = blocks(&readme, "python");
    assert_eq!(examples.len(), 2, "an HTTP and a gRPC example");
    let python = std::env::var("AIMASS_PYTHON").ok();
    for (python, example) in python
        .iter()
        .flat_map(|p| examples.iter().map(move |e| (p, e)))
    {
        let example = example
            .replace("127.0.0.1:8000", &address)
            .replace("127.0.0.1:8001", &grpc_address);
        let stdout = run_python(python, &example, &root);
        let list = |prefix: &str| -> Vec<String> {
            let line = stdout
                .lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("{stdout}"));
            line[prefix.len()..]
                .trim()
                .trim_matches(['[', ']'])
                .split(", ")
                .map(str::to_string)
                .collect()
        };
        let (labels, truth) = (list("labels:"), list("truth: "));
        assert_eq!(labels.len(), 8);
        // As the README says: all eight right, one escalated.
        assert_eq!(labels, truth, "{stdout}");
        let stages = list("stages:");
        assert_eq!(stages.iter().filter(|s| *s == "1").count(), 1, "{stdout}");
    }

    // The eval command the example's README shows its table was made with
    // (as JSON, for the test to read).
    let digits_readme = std::fs::read_to_string(root.join("examples/digits/README.md")).unwrap();
    let eval = blocks(&digits_readme, "sh")
        .into_iter()
        .find(|b| b.contains(" eval "))
        .expect("an eval command");
    let (_, args) = eval
        .trim()
        .split_once("cargo run --release -p aimass -- ")
        .expect("runs aimass");
    let output = Command::new(env!("CARGO_BIN_EXE_aimass"))
        .args(args.split_whitespace())
        .arg("--json")
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["model"], "digits");
    let accuracy = report["scores"]["accuracy"].as_f64().unwrap();
    assert!(
        digits_readme.contains(&format!("| `digits` (cascade at 0.9) | {accuracy:.4} |")),
        "{accuracy}"
    );
    assert_eq!(report["stages"][0]["stage"], 0);

    // SIGTERM: a clean exit.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit {status}:\n{}", log.lock().unwrap());

    // The capture read back with pyarrow, as printed (the server wrote its
    // files as it stopped).
    let reading = blocks(&readme, "py");
    assert_eq!(reading.len(), 1, "one pyarrow example");
    if let Ok(python) = std::env::var("AIMASS_PYTHON") {
        let stdout = run_python(&python, &reading[0], &root);
        assert!(stdout.contains("answers with feedback"), "{stdout}");
        assert!(!stdout.starts_with("0 answers"), "{stdout}");
    }
}
