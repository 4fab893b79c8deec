//! BYTES end to end on the real server: REST JSON and binary, gRPC typed
//! and raw, through a plain node, a batching node, a cascade and capture;
//! bad framing and oversized elements refused naming the input; plugins
//! that break the contract with BYTES failed with their own error; and
//! the stock tritonclient (HTTP and gRPC) where a Python with it is at hand.

use aimass::server::Limits;
use aimass::server::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use aimass::server::grpc::proto::{self as pb, model_infer_request::InferInputTensor};
use aimass::tensor::strings;
use aimass_tests::{TestServer, output, run_python};
use serde_json::{Value, json};
use std::path::Path;

async fn server() -> TestServer {
    TestServer::start_config("configs/strings.toml", Limits::default()).await
}

fn text_input(data: Value, shape: &[usize]) -> Value {
    json!({"inputs": [{"name": "text", "shape": shape, "datatype": "BYTES", "data": data}]})
}

#[tokio::test]
async fn text_round_trips_as_json_strings() {
    let server = server().await;
    let sent = json!(["", "héllo wörld", "文字", "a b"]);
    let (status, answer) = server
        .post_json("/v2/models/shout/infer", &text_input(sent, &[4]))
        .await;
    assert_eq!(status, 200, "{answer}");
    let upper = output(&answer, "upper");
    assert_eq!(upper["datatype"], "BYTES");
    assert_eq!(upper["shape"], json!([4]));
    assert_eq!(upper["data"], json!(["", "HéLLO WöRLD", "文字", "A B"]));
    assert_eq!(output(&answer, "length")["data"], json!([0, 13, 6, 3]));

    // Metadata says BYTES too.
    let (_, metadata) = server.get_json("/v2/models/shout").await;
    assert_eq!(metadata["inputs"][0]["datatype"], "BYTES");
}

#[tokio::test]
async fn bytes_round_trip_as_binary_including_non_utf8_and_many_elements() {
    let server = server().await;
    let mut elements: Vec<Vec<u8>> = vec![vec![], vec![0xff, 0x00, b'a'], "ç".as_bytes().to_vec()];
    elements.extend((0..5000).map(|i| format!("line {i}").into_bytes()));
    let tail = strings::encode(&elements).unwrap();
    let header = json!({
        "inputs": [{"name": "text", "shape": [elements.len()], "datatype": "BYTES",
                    "parameters": {"binary_data_size": tail.len()}}],
        "outputs": [{"name": "upper", "parameters": {"binary_data": true}}, {"name": "length"}]
    });
    let (status, answer, binary) = server.post_binary("shout", &header, &tail).await;
    assert_eq!(status, 200, "{answer}");
    let upper = output(&answer, "upper");
    assert_eq!(upper["parameters"]["binary_data_size"], binary.len());
    let back: Vec<&[u8]> = strings::elements(&binary).collect();
    assert_eq!(back.len(), elements.len());
    assert_eq!(back[1], [0xff, 0x00, b'A']);
    assert_eq!(back[2], "ç".as_bytes());
    assert_eq!(back[4999 + 3], b"LINE 4999");

    // Asked for as JSON, an element that is not UTF-8 still comes back
    // exactly, as binary (JSON strings cannot hold it).
    let tail = strings::encode(&[[0xfeu8, 0xff]]).unwrap();
    let header = json!({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES",
                        "parameters": {"binary_data_size": tail.len()}}]});
    let (status, answer, binary) = server.post_binary("shout", &header, &tail).await;
    assert_eq!(status, 200, "{answer}");
    assert!(output(&answer, "upper").get("data").is_none(), "{answer}");
    assert_eq!(binary, strings::encode(&[[0xfeu8, 0xff]]).unwrap());
}

#[tokio::test]
async fn bad_framing_and_oversized_elements_are_refused_naming_the_input() {
    let server = server().await;
    let cases: Vec<(Vec<u8>, usize, &str)> = vec![
        (
            vec![9, 0, 0, 0, b'a'],
            1,
            "element 0 says it is 9 bytes, only 1 are left",
        ),
        (strings::encode(&["ab"]).unwrap(), 2, "element 1 of 2"),
        (
            u32::MAX.to_le_bytes().to_vec(),
            1,
            "the most one element may be is 67108864",
        ),
    ];
    for (tail, count, expected) in cases {
        let header = json!({"inputs": [{"name": "text", "shape": [count], "datatype": "BYTES",
                            "parameters": {"binary_data_size": tail.len()}}]});
        let (status, answer, _) = server.post_binary("shout", &header, &tail).await;
        assert_eq!(status, 400, "{answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.starts_with("input `text`: BYTES data: "), "{error}");
        assert!(error.contains(expected), "{error}");
    }
    let (status, answer) = server
        .post_json("/v2/models/shout/infer", &text_input(json!(["a", 5]), &[2]))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        answer["error"],
        "input `text`: element 1 is a number, not a string (BYTES data is strings)"
    );
}

#[tokio::test]
async fn a_plugin_breaking_the_contract_with_bytes_fails_with_its_own_error() {
    let server = server().await;
    let body = text_input(json!(["x"]), &[1]);
    for (model, expected) in [
        ("undeclared", "`secret`"),
        ("oversized", "the most one element may be is 67108864"),
        (
            "bad-framing",
            "element 0 says it is 5 bytes, only 1 are left",
        ),
    ] {
        let (status, answer) = server
            .post_json(&format!("/v2/models/{model}/infer"), &body)
            .await;
        assert_eq!(status, 500, "{model}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(
            error.contains("strings"),
            "{model}: names the plugin: {error}"
        );
        assert!(error.contains(expected), "{model}: {error}");
    }
    // And the node beside them still serves.
    let (status, _) = server.post_json("/v2/models/shout/infer", &body).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn strings_go_through_a_batching_node_and_a_cascade() {
    let server = server().await;
    let calls = (0..24).map(|i| {
        let server = &server;
        async move {
            let word = "é".repeat(i % 5) + &format!("#{i}");
            let (status, answer) = server
                .post_json(
                    "/v2/models/shout-batched/infer",
                    &text_input(json!([word.clone(), "tail"]), &[2]),
                )
                .await;
            assert_eq!(status, 200, "{answer}");
            let expected = word.to_ascii_uppercase();
            assert_eq!(output(&answer, "upper")["data"], json!([expected, "TAIL"]));
        }
    });
    futures::future::join_all(calls).await;

    // Even lengths stop at the first stage, odd ones escalate.
    let (status, answer) = server
        .post_json(
            "/v2/models/escalate/infer",
            &text_input(json!(["ab", "abc", "", "文"]), &[4]),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        output(&answer, "upper")["data"],
        json!(["1:AB", "2:ABC", "1:", "2:文"])
    );
    assert_eq!(output(&answer, "stage")["data"], json!([0, 1, 0, 1]));
}

fn grpc_request(
    contents: Option<pb::InferTensorContents>,
    raw: Vec<Vec<u8>>,
    count: i64,
) -> pb::ModelInferRequest {
    pb::ModelInferRequest {
        model_name: "shout".into(),
        inputs: vec![InferInputTensor {
            name: "text".into(),
            datatype: "BYTES".into(),
            shape: vec![count],
            contents,
            ..Default::default()
        }],
        raw_input_contents: raw.into_iter().map(Into::into).collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn bytes_round_trip_over_grpc_typed_and_raw() {
    let server = server().await;
    let mut grpc = GrpcInferenceServiceClient::connect(server.grpc.clone())
        .await
        .unwrap();
    let typed = pb::InferTensorContents {
        bytes_contents: vec![
            Vec::new().into(),
            vec![0xff, b'z'].into(),
            "ü".as_bytes().to_vec().into(),
        ],
        ..Default::default()
    };
    let answer = grpc
        .model_infer(grpc_request(Some(typed), vec![], 3))
        .await
        .unwrap()
        .into_inner();
    let at = answer
        .outputs
        .iter()
        .position(|o| o.name == "upper")
        .unwrap();
    assert_eq!(answer.outputs[at].datatype, "BYTES");
    let back: Vec<&[u8]> = strings::elements(&answer.raw_output_contents[at]).collect();
    assert_eq!(back, [&b""[..], &[0xff, b'Z'], "ü".as_bytes()]);

    let raw = strings::encode(&["abc"]).unwrap();
    let answer = grpc
        .model_infer(grpc_request(None, vec![raw], 1))
        .await
        .unwrap()
        .into_inner();
    let at = answer
        .outputs
        .iter()
        .position(|o| o.name == "upper")
        .unwrap();
    assert_eq!(
        answer.raw_output_contents[at],
        strings::encode(&["ABC"]).unwrap()
    );

    let broken = grpc
        .model_infer(grpc_request(None, vec![vec![7, 0, 0, 0]], 1))
        .await
        .unwrap_err();
    assert_eq!(broken.code(), tonic::Code::InvalidArgument);
    assert!(
        broken.message().starts_with("input `text`: BYTES data"),
        "{}",
        broken.message()
    );
}

#[tokio::test]
#[cfg_attr(not(aimass_python), ignore = "needs AIMASS_PYTHON (pyarrow)")]
async fn captured_strings_read_back_with_pyarrow_as_binary_lists() {
    let server = server().await;
    let (status, _) = server
        .post_json(
            "/v2/models/shout/infer",
            &json!({"id": "cap-1", "inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["ab", "文"]}]}),
        )
        .await;
    assert_eq!(status, 200);
    let folder = server
        .config
        .parent()
        .unwrap()
        .join("capture/shout/requests");
    let started = std::time::Instant::now();
    while std::fs::read_dir(&folder).map_or(true, |d| d.count() == 0) {
        assert!(
            started.elapsed().as_secs() < 20,
            "no capture file in {}",
            folder.display()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let python = std::env::var("AIMASS_PYTHON").expect("AIMASS_PYTHON");
    let script = r#"
import sys, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
row = t.to_pylist()[0]
assert row["id"] == "cap-1", row
assert row["input:text"] == [b"ab", "文".encode()], row["input:text"]
assert row["output:upper"] == [b"AB", "文".encode()], row["output:upper"]
field = t.schema.field("input:text")
assert field.metadata[b"aimass:datatype"] == b"BYTES", field.metadata
print("ok")
"#;
    run_python(python, vec!["-c".into(), script.into(), folder.into()]).await;
    let _ = std::fs::remove_dir_all(server.config.parent().unwrap());
}

#[tokio::test]
#[cfg_attr(not(aimass_python), ignore = "needs AIMASS_PYTHON (tritonclient)")]
async fn stock_tritonclient_sends_and_reads_bytes() {
    let server = server().await;
    let python = std::env::var("AIMASS_PYTHON").expect("AIMASS_PYTHON");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/tritonclient_bytes.py");
    let args = vec![
        script.into(),
        server.base.trim_start_matches("http://").into(),
        server.grpc.trim_start_matches("http://").into(),
    ];
    let stdout = run_python(python, args).await;
    assert!(stdout.contains("checks passed"), "{stdout}");
}
