//! One client's poison row in a batching node's merged call fails only that
//! client: the calls merged with it are run apart, every other client gets
//! its own rows back, no error carries another client's data, and the
//! mates' latency stays within a bound. The `poison` fixture
//! (tests/plugins/poison) fails a whole call on one row, quoting every value
//! it was given, as a careless model would.

use aimass::server::Limits;
use aimass_tests::{TestServer, output};
use futures::future::join_all;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The fixture's call limit (tests/configs/poison.toml).
const LIMIT: Duration = Duration::from_millis(800);
const CLIENTS: usize = 8;
const POISONER: usize = 3;

/// Client `i`'s two rows of three values, all its own: 7000 + 10·i + k.
fn rows(i: usize) -> Vec<f32> {
    (0..6)
        .map(|k| 7000.0 + 10.0 * i as f32 + k as f32)
        .collect()
}

fn request(values: &[f32]) -> Value {
    json!({"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": values}]})
}

/// What each client got back, how long it took, and the whole text of its
/// answer.
async fn merged_round(
    server: &TestServer,
    model: &str,
    poison: f32,
) -> Vec<(u16, Value, Duration)> {
    let path = format!("/v2/models/{model}/infer");
    let bodies: Vec<Value> = (0..CLIENTS)
        .map(|i| {
            let mut values = rows(i);
            if i == POISONER {
                values[0] = poison;
            }
            request(&values)
        })
        .collect();
    join_all(bodies.iter().map(|body| async {
        let started = Instant::now();
        let (status, answer) = server.post_json(&path, body).await;
        (status, answer, started.elapsed())
    }))
    .await
}

/// Every value client `i` sent, as the plugin's error would quote it.
fn quoted(i: usize) -> Vec<String> {
    rows(i).iter().map(|v| format!("{v:?}")).collect()
}

fn check_round(
    what: &str,
    answers: &[(u16, Value, Duration)],
    poisoner_status: u16,
    mate_bound: Duration,
) {
    for (i, (status, answer, took)) in answers.iter().enumerate() {
        let text = answer.to_string();
        for other in (0..CLIENTS).filter(|&o| o != i) {
            for value in quoted(other) {
                assert!(
                    !text.contains(&value),
                    "{what}: client {i}'s answer carries client {other}'s {value}: {text}"
                );
            }
        }
        if i == POISONER {
            assert_eq!(*status, poisoner_status, "{what}: the poisoner got {text}");
            assert!(answer["error"].is_string(), "{what}: {text}");
            continue;
        }
        assert_eq!(*status, 200, "{what}: bystander {i} failed: {text}");
        let y: Vec<f64> = serde_json::from_value(output(answer, "y")["data"].clone()).unwrap();
        let sent: Vec<f64> = rows(i).iter().map(|&v| f64::from(v)).collect();
        assert_eq!(y, sent, "{what}: bystander {i} got other rows");
        assert!(
            *took < mate_bound,
            "{what}: bystander {i} took {took:?}, over {mate_bound:?}"
        );
    }
}

async fn start() -> TestServer {
    TestServer::start_config(
        "configs/poison.toml",
        Limits {
            request_timeout: Duration::from_secs(10),
            ..Limits::default()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_row_fails_only_its_sender_whatever_the_plugin_does() {
    let server = start().await;
    // Quick failures: a mate waits for the merged call, then for a few
    // halves of it (each a few ms), never for a time limit.
    let quick = Duration::from_millis(2000);
    for (poison, what, status) in [
        (-1.0, "trap", 500),
        (-3.0, "model error", 500),
        (-4.0, "a row short", 500),
        (-5.0, "invalid row", 400),
        (-6.0, "out of memory", 500),
    ] {
        let answers = merged_round(&server, "merged", poison).await;
        check_round(what, &answers, status, quick);
    }
    // Every call of each round merged into one at first.
    let split = server
        .metric("aimass_batch_split_calls_total{node=\"merged\"}")
        .await;
    assert!(split >= (5 * CLIENTS) as f64, "{split} calls run apart");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_in_a_merged_call_is_not_sat_through_twice_by_the_mates() {
    let server = start().await;
    let answers = merged_round(&server, "merged", -2.0).await;
    // The merged call's limit, the queue delay, then each mate alone on a
    // free instance while the culprit runs into the limit again: well under
    // two limits.
    check_round("timeout", &answers, 500, 2 * LIMIT);
    let (_, error, took) = &answers[POISONER];
    assert!(
        error["error"].as_str().unwrap().contains("timed out"),
        "{error}"
    );
    assert!(*took >= 2 * LIMIT, "the poisoner answered after {took:?}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_instance_the_calls_run_apart_one_after_another() {
    let server = start().await;
    let answers = merged_round(&server, "merged-alone", -3.0).await;
    check_round(
        "model error, one instance",
        &answers,
        500,
        Duration::from_millis(2000),
    );
    server.stop().await.unwrap();
}

/// A plugin's error of 4,200 bytes of three-byte characters would take
/// 12 KiB percent-encoded in the `grpc-message` trailer, past stock
/// clients' 8 KiB of metadata: it is cut to 4 KiB once encoded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wide_error_fits_its_grpc_trailer() {
    use aimass::server::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
    use aimass::server::grpc::proto::{self as pb, model_infer_request::InferInputTensor};
    let server = start().await;
    let mut client = GrpcInferenceServiceClient::connect(server.grpc.clone())
        .await
        .expect("connect");
    let raw: Vec<u8> = [-7.0f32, 1.0, 2.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let request = pb::ModelInferRequest {
        model_name: "captured".into(),
        inputs: vec![InferInputTensor {
            name: "x".into(),
            datatype: "FP32".into(),
            shape: vec![1, 3],
            ..Default::default()
        }],
        raw_input_contents: vec![raw.into()],
        ..Default::default()
    };
    let status = client.model_infer(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
    let message = status.message();
    assert!(message.contains("語語語"), "{message}");
    assert!(message.ends_with("bytes cut)"), "{message}");
    // As tonic percent-encodes it for the trailer.
    let encoded: usize = message
        .bytes()
        .map(|b| {
            if b.is_ascii_graphic() && !b"\"#%<>`?{}".contains(&b) {
                1
            } else {
                3
            }
        })
        .sum();
    assert!(encoded <= 4096, "a trailer of {encoded} bytes");
    server.stop().await.unwrap();
}
