//! Dynamic batching with a real plugin: concurrent calls to a batching node
//! merge into one plugin call, each caller gets its own rows back, a call
//! over the batch size runs alone, a full queue refuses, and a call whose
//! caller gave up never runs. Plugin calls are counted by the node's pool.

use aimass::error_kind::ErrorKind;
use aimass::graph::{ExecError, Request, Response, Served};
use aimass::repository::Repository;
use aimass::server::Limits;
use aimass::tensor::Tensor;
use aimass_tests::{TestServer, f32_tensor, f32_values, open_config};
use futures::future::join_all;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

async fn repository() -> Repository {
    open_config("configs/batching.toml")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn model<'a>(repository: &'a Repository, name: &str) -> &'a Arc<Served> {
    repository
        .models
        .get(name)
        .unwrap_or_else(|| panic!("no model {name}"))
}

fn calls(model: &Served) -> u64 {
    model.pool().expect("a node").calls()
}

/// `rows` rows of two values, all starting at `first`.
fn rows(rows: usize, first: f32) -> Tensor {
    let values: Vec<f32> = (0..rows * 2).map(|i| first + i as f32).collect();
    f32_tensor(&[rows as u32, 2], &values)
}

async fn run(model: &Arc<Served>, x: Tensor) -> Result<Response, ExecError> {
    model
        .run(Request {
            inputs: vec![("x".into(), x)],
            ..Request::default()
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_merge_into_one_and_each_gets_its_own_rows() {
    let repository = repository().await;
    let echo = model(&repository, "echo");
    let before = calls(echo);
    // Eight callers with 1 to 3 rows each, every value distinct.
    let inputs: Vec<Tensor> = (0..8).map(|i| rows(i % 3 + 1, i as f32 * 100.0)).collect();
    let answers = join_all(inputs.iter().map(|x| run(echo, x.clone()))).await;
    for (x, answer) in inputs.iter().zip(answers) {
        let answer = answer.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(answer.outputs[0].1.dims(), x.dims());
        assert_eq!(f32_values(&answer.outputs[0].1), f32_values(x));
    }
    // All eight arrived within the 100 ms queue delay: one plugin call.
    assert_eq!(calls(echo) - before, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_batch_runs_after_the_delay_and_a_big_call_runs_alone() {
    let repository = repository().await;
    let small = model(&repository, "small");
    // One row never fills the batch: the queue delay sends it on.
    let alone = run(small, rows(1, 7.0)).await.unwrap();
    assert_eq!(f32_values(&alone.outputs[0].1), [7.0, 8.0]);
    let before = calls(small);
    // Five rows are over the batch size of 4: never split, run by
    // themselves; the one-row call does not join them.
    let (big, one) = tokio::join!(run(small, rows(5, 0.0)), run(small, rows(1, 50.0)));
    assert_eq!(
        f32_values(&big.unwrap().outputs[0].1),
        f32_values(&rows(5, 0.0))
    );
    assert_eq!(f32_values(&one.unwrap().outputs[0].1), [50.0, 51.0]);
    assert_eq!(calls(small) - before, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_and_a_call_given_up_never_runs() {
    let repository = repository().await;
    let stuck = model(&repository, "stuck").clone();
    let before = calls(&stuck);
    let pause = || tokio::time::sleep(Duration::from_millis(200));
    // A runs (the plugin loops until its 1 s deadline).
    let a = tokio::spawn({
        let stuck = stuck.clone();
        async move { run(&stuck, rows(1, 0.0)).await }
    });
    pause().await;
    // B waits for the busy instance; its caller gives up at 500 ms.
    let b = tokio::spawn({
        let stuck = stuck.clone();
        async move { tokio::time::timeout(Duration::from_millis(500), run(&stuck, rows(1, 0.0))).await }
    });
    pause().await;
    // C fills the one place in the queue.
    let c = tokio::spawn({
        let stuck = stuck.clone();
        async move { run(&stuck, rows(1, 0.0)).await }
    });
    pause().await;
    let refused = run(&stuck, rows(1, 0.0)).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Unavailable, "{refused}");
    assert!(
        refused.to_string().contains("1 calls waiting for a batch"),
        "{refused}"
    );
    assert!(b.await.unwrap().is_err(), "B's caller should have given up");
    let a = a.await.unwrap().unwrap_err();
    assert!(a.to_string().contains("timed out"), "{a}");
    let c = c.await.unwrap().unwrap_err();
    assert!(c.to_string().contains("timed out"), "{c}");
    // A and C ran; B, given up while it waited, never did.
    assert_eq!(calls(&stuck) - before, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_call_in_a_merged_batch_fails_alone() {
    let repository = repository().await;
    let picky = model(&repository, "picky");
    let before = calls(picky);
    let inputs = [rows(2, 0.0), rows(1, -5.0), rows(3, 10.0), rows(1, 20.0)];
    let answers = join_all(inputs.iter().map(|x| run(picky, x.clone()))).await;
    for (i, (x, answer)) in inputs.iter().zip(answers).enumerate() {
        match answer {
            Ok(answer) => {
                assert_ne!(i, 1, "the negative call was answered");
                assert_eq!(f32_values(&answer.outputs[0].1), f32_values(x));
            }
            Err(e) => {
                assert_eq!(i, 1, "a good call failed: {e}");
                assert_eq!(e.kind(), ErrorKind::Client);
                assert!(e.to_string().contains("a value is negative"), "{e}");
            }
        }
    }
    // The merged call was refused, then each call ran alone.
    assert_eq!(calls(picky) - before, 1 + 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalations_of_concurrent_requests_merge_at_a_batching_stage() {
    let repository = repository().await;
    let cascade = model(&repository, "escalating");
    let expert = model(&repository, "expert");
    let before = calls(expert);
    let answers = join_all((1..=4).map(|n| run(cascade, rows(n, 0.0)))).await;
    for (n, answer) in (1..=4).zip(answers) {
        let answer = answer.unwrap_or_else(|e| panic!("{e}"));
        let stage = answer
            .outputs
            .iter()
            .find(|(name, _)| name == "stage")
            .unwrap();
        assert_eq!(stage.1.i64s().unwrap(), vec![1; n], "every row escalated");
    }
    assert_eq!(calls(expert) - before, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_show_in_the_metrics() {
    // Installed before the node starts, so that its batcher records.
    let metrics = aimass::metrics::install().expect("the recorder");
    let repository = repository().await;
    let counted = model(&repository, "counted");
    let answers = join_all((0..3).map(|i| run(counted, rows(2, i as f32)))).await;
    assert!(answers.iter().all(Result::is_ok));
    let text = metrics.render();
    let series = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}{{node=\"counted\"}} ")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {name} for `counted` in:\n{text}"))
    };
    // Three calls of two rows each, merged: 6 rows in all, each call queued.
    assert_eq!(series("aimass_batch_rows_sum"), 6.0);
    assert_eq!(series("aimass_batch_queue_duration_seconds_count"), 3.0);
    assert_eq!(series("aimass_batch_queue_depth"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_config_report_batches_as_triton_does() {
    let server = TestServer::start_config("configs/batching.toml", Limits::default()).await;
    let request = |n: usize| json!({"inputs": [{"name": "x", "shape": [n, 2], "datatype": "FP32", "data": vec![1.0; n * 2]}]});
    let bodies: Vec<_> = (1..=3).map(request).collect();
    let answers = join_all(
        bodies
            .iter()
            .map(|body| server.post_json("/v2/models/echo/infer", body)),
    )
    .await;
    assert!(
        answers.iter().all(|(status, _)| *status == 200),
        "{answers:?}"
    );
    let (status, stats) = server.get_json("/v2/models/echo/stats").await;
    assert_eq!(status, 200, "{stats}");
    let stats = &stats["model_stats"][0];
    // Three requests of 1 + 2 + 3 rows. Merging itself is proven above;
    // here the figures must agree with each other, as tritonclient reads
    // them: executions are the plugin calls, by their batch sizes.
    assert_eq!(stats["inference_count"], 6, "{stats}");
    let batches = stats["batch_stats"].as_array().expect("batch_stats");
    let calls: u64 = batches
        .iter()
        .map(|b| b["compute_infer"]["count"].as_u64().unwrap())
        .sum();
    let rows: u64 = batches
        .iter()
        .map(|b| b["batch_size"].as_u64().unwrap() * b["compute_infer"]["count"].as_u64().unwrap())
        .sum();
    assert_eq!(stats["execution_count"], calls, "{stats}");
    assert_eq!(rows, 6, "{stats}");
    assert!(
        calls < 3,
        "three requests arriving together were not merged: {stats}"
    );
    let (_, config) = server.get_json("/v2/models/echo/config").await;
    assert_eq!(
        config["dynamic_batching"]["max_queue_delay_microseconds"], 100_000,
        "{config}"
    );
    let (_, config) = server.get_json("/v2/models/escalating/config").await;
    assert!(config.get("dynamic_batching").is_none(), "{config}");
    server.stop().await.unwrap();
}
