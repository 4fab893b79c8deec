//! The distillation loop on the digits example, end to end, with the
//! example's own scripts: `replay.py` serves the training split through the
//! `digits` cascade with capture on (a third of it gets feedback),
//! `distill.py` distils a new student from the capture, and a load of
//! `student-head` swaps it in while clients keep calling, with no failed
//! request. The served student must
//! have changed and keep its accuracy on the test split.

use aimass_tests::{TestServer, digits_dir, digits_rows, read_json, write_config};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The most the re-distilled student's test accuracy may fall below the
/// committed one's.
const TOLERANCE: f64 = 0.03;

fn pixels(rows: &[(Vec<f32>, i64)]) -> Value {
    let values: Vec<f32> = rows.iter().flat_map(|(p, _)| p.iter().copied()).collect();
    json!({"inputs": [
        {"name": "pixels", "shape": [rows.len(), 64], "datatype": "FP32", "data": values},
    ]})
}

/// The `student` model's labels and probabilities on the test split.
async fn student_on_test_split(server: &TestServer) -> (f64, Vec<Value>) {
    let rows = digits_rows("test");
    let mut correct = 0;
    let mut probabilities = Vec::new();
    for chunk in rows.chunks(60) {
        let (status, answer) = server
            .post_json("/v2/models/student/infer", &pixels(chunk))
            .await;
        assert_eq!(status, 200, "{answer}");
        let outputs = answer["outputs"].as_array().unwrap();
        let find = |name: &str| outputs.iter().find(|o| o["name"] == name).unwrap();
        let labels = find("label")["data"].as_array().unwrap().clone();
        for (label, (_, truth)) in labels.iter().zip(chunk) {
            correct += usize::from(label.as_i64() == Some(*truth));
        }
        probabilities.extend(find("probabilities")["data"].as_array().unwrap().clone());
    }
    (correct as f64 / rows.len() as f64, probabilities)
}

/// Runs `examples/digits/SCRIPT` with `args` in the example's folder; its
/// JSON summary.
async fn run_python(python: &str, script: &str, args: Vec<String>) -> Value {
    let (python, file) = (python.to_string(), script.to_string());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(&file)
            .args(&args)
            .current_dir(digits_dir())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(aimass_python),
    ignore = "needs AIMASS_PYTHON, a Python with numpy, onnx and pyarrow (bash .ci/run makes one)"
)]
async fn a_student_distilled_from_captured_traffic_is_swapped_in_without_a_failure() {
    // The student's graph is a copy the loop may overwrite.
    let config = write_config("configs/capture.toml");
    let dir = config.parent().unwrap().to_path_buf();
    let student = dir.join("student.onnx");
    std::fs::copy(digits_dir().join("models/student.onnx"), &student).unwrap();
    let committed = format!("\"{}\"", digits_dir().join("models/student.onnx").display());
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(&committed));
    std::fs::write(&config, text.replace(&committed, "\"student.onnx\"")).unwrap();
    let server = TestServer::start_file(config.clone()).await;
    let (before, before_probabilities) = student_on_test_split(&server).await;

    // Traffic: the training split, one image per request, with a third of
    // the requests' true labels sent back as feedback (replay.py, as the
    // example's README runs it).
    let train = digits_rows("train");
    let python = std::env::var("AIMASS_PYTHON").unwrap();
    let replayed = run_python(
        &python,
        "replay.py",
        vec![
            "--url".into(),
            server.base.clone(),
            "--data".into(),
            "data/train.csv".into(),
            "--feedback-every".into(),
            "3".into(),
        ],
    )
    .await;
    assert_eq!(replayed["requests"], train.len());
    let expected = (train.len() + train.len().div_ceil(3)) as f64;
    let started = Instant::now();
    while server
        .metric("aimass_capture_rows_total{model=\"digits\"}")
        .await
        < expected
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "capture not flushed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // `aimass eval` on the capture: what was served to the requests with
    // feedback, and the model run again on the same inputs, agree.
    let captured = aimass::eval::read_capture(&dir.join("capture/digits"), "pixels").unwrap();
    assert_eq!(captured.live.samples as usize, train.len().div_ceil(3));
    let live = captured.live.accuracy;
    assert!((live - replayed["accuracy_with_feedback"].as_f64().unwrap()).abs() < 1e-9);
    let stages = captured.live.stages.clone().expect("the cascade's stages");
    assert_eq!(
        stages.iter().map(|s| s.samples).sum::<u64>(),
        captured.live.samples
    );
    let repository = aimass::repository::Repository::open(&config).await.unwrap();
    let report = aimass::eval::evaluate(
        &repository.models["digits"],
        &captured.dataset,
        "capture",
        1,
    )
    .await
    .unwrap();
    assert_eq!(report.scores.accuracy, live);
    drop(repository);

    let summary = run_python(
        &python,
        "distill.py",
        vec![
            dir.join("capture/digits").display().to_string(),
            student.display().to_string(),
        ],
    )
    .await;
    assert_eq!(summary["requests"], train.len());
    assert_eq!(summary["labelled"], train.len().div_ceil(3));
    assert!(summary["escalated"].as_u64().unwrap() > 0, "{summary}");

    // The swap, under load.
    let stop = Arc::new(AtomicBool::new(false));
    let (answered, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut load = Vec::new();
    for _ in 0..2 {
        let (http, base) = (server.client.clone(), server.base.clone());
        let (stop, answered, failed) = (stop.clone(), answered.clone(), failed.clone());
        let body = pixels(&train[..4]);
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let response = http
                    .post(format!("{base}/v2/models/digits/infer"))
                    .json(&body)
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status() == 200 => answered.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = read_json(
        server
            .client
            .post(server.url("/v2/repository/models/student-head/load"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for client in load {
        client.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(answered.load(Ordering::Relaxed) > 0);

    let (after, after_probabilities) = student_on_test_split(&server).await;
    eprintln!(
        "student accuracy on the test split: committed {before:.4}, re-distilled {after:.4} \
         ({summary})"
    );
    assert_ne!(
        before_probabilities, after_probabilities,
        "the student did not change"
    );
    assert!(
        after >= before - TOLERANCE,
        "re-distilled {after:.4} against {before:.4}"
    );
    assert!(Path::new(&student).exists());
    server.stop().await.unwrap();
}
