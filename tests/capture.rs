//! Capture (tests/configs/capture.toml): what is kept is exactly what was
//! served, read back by pyarrow; the sample rate holds; rotation and
//! retention keep the folder under its limit; a folder that cannot be
//! written fails no inference and counts what it lost; feedback joins its
//! request. (A process killed mid-capture: host/tests/capture_kill.rs.)

use aimass::server::Limits;
use aimass_tests::{TestServer, digits_test_rows, output, read_json};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

async fn start() -> TestServer {
    TestServer::start_config("configs/capture.toml", Limits::default()).await
}

fn capture_dir(server: &TestServer, model: &str) -> PathBuf {
    server.config.parent().unwrap().join("capture").join(model)
}

/// The rows `from..from + n` of the digits test split as one request.
fn pixels(from: usize, n: usize) -> (Vec<f32>, Value) {
    let rows = digits_test_rows();
    let values: Vec<f32> = rows[from..from + n]
        .iter()
        .flat_map(|(p, _)| p.iter().copied())
        .collect();
    let body = json!({"inputs": [
        {"name": "pixels", "shape": [n, 64], "datatype": "FP32", "data": values},
    ]});
    (values, body)
}

/// POSTs an inference with `x-request-id: id`; the answer.
async fn infer(server: &TestServer, model: &str, id: &str, body: &Value) -> Value {
    let response = server
        .client
        .post(server.url(&format!("/v2/models/{model}/infer")))
        .header("x-request-id", id)
        .json(body)
        .send()
        .await
        .unwrap();
    let (status, answer) = read_json(response).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

/// Waits until `series` reaches `at_least` (the writer flushes on its own).
async fn wait_for(server: &TestServer, series: &str, at_least: f64) -> f64 {
    let started = Instant::now();
    loop {
        let value = server.metric(series).await;
        if value >= at_least {
            return value;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{series} is {value}, not {at_least}, after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of `series` once it has stopped changing for a second (the
/// writer flushes every 100 ms here), whatever the machine's load.
async fn settled(server: &TestServer, series: &str) -> f64 {
    let started = Instant::now();
    let (mut last, mut since) = (server.metric(series).await, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let value = server.metric(series).await;
        if value != last {
            (last, since) = (value, Instant::now());
        } else if value > 0.0 && since.elapsed() >= Duration::from_secs(1) {
            return value;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{series} still changing (or 0) after 30 s: {value}"
        );
    }
}

/// Runs tests/capture/read_capture.py (pyarrow) on a model's capture folder.
async fn read_with_pyarrow(dir: &Path) -> Value {
    run_reader("read_capture.py", dir).await
}

/// Runs the pyarrow script `script` of tests/capture/ on `dir`; its JSON.
async fn run_reader(script: &str, dir: &Path) -> Value {
    let python = std::env::var("AIMASS_PYTHON")
        .expect("AIMASS_REQUIRE_PYTHON is set but AIMASS_PYTHON is not");
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("capture")
        .join(script);
    let dir = dir.to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&python)
            .arg(&script)
            .arg(&dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {python}: {e}"))
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn f32_bits(values: &Value) -> Vec<u32> {
    values
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {values}"))
        .iter()
        .map(|v| (v.as_f64().unwrap() as f32).to_bits())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(aimass_python),
    ignore = "needs AIMASS_PYTHON, a Python with pyarrow (bash .ci/run makes one)"
)]
async fn what_is_captured_is_exactly_what_was_served_and_feedback_joins_it() {
    let server = start().await;
    let labels: Vec<i64> = digits_test_rows().iter().map(|(_, l)| *l).collect();
    let mut sent = Vec::new();
    let mut from = 0;
    for i in 0..40 {
        let n = 1 + i % 4;
        let (values, body) = pixels(from, n);
        let id = format!("req-{i}");
        let answer = infer(&server, "digits", &id, &body).await;
        sent.push((id, from, n, values, answer));
        from += n;
    }
    // Feedback for every other request: the true label of its first row.
    for (id, from, _, _, _) in sent.iter().step_by(2) {
        let (status, body) = server
            .post_json(
                "/v2/models/digits/feedback",
                &json!({"id": id, "label": labels[*from]}),
            )
            .await;
        assert_eq!((status, &body["id"]), (200, &json!(id)), "{body}");
    }
    // What is refused, and why.
    let (status, body) = server
        .post_json("/v2/models/digits/feedback", &json!({"id": "req-0"}))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("says nothing"),
        "{body}"
    );
    let (status, body) = server
        .post_json(
            "/v2/models/student-head/feedback",
            &json!({"id": "x", "label": 1}),
        )
        .await;
    assert_eq!(status, 409);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("add [capture.student-head]"),
        "{body}"
    );
    let (status, _) = server
        .post_json("/v2/models/nope/feedback", &json!({"id": "x", "label": 1}))
        .await;
    assert_eq!(status, 404);

    // 40 requests and 20 feedback entries, flushed within `flush_ms`.
    wait_for(&server, "aimass_capture_rows_total{model=\"digits\"}", 60.0).await;
    let capture = read_with_pyarrow(&capture_dir(&server, "digits")).await;
    let requests = capture["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 40);
    assert_eq!(capture["datatypes"]["input:pixels"], "FP32");
    assert_eq!(capture["datatypes"]["output:label"], "INT64");
    assert_eq!(capture["datatypes"]["inner:features:y"], "FP32");
    for (id, _, n, values, answer) in &sent {
        let row = requests
            .iter()
            .find(|r| r["id"] == json!(id))
            .unwrap_or_else(|| panic!("{id} was not captured"));
        assert_eq!(row["model"], "digits");
        assert_eq!(row["version"], 1);
        assert_eq!(row["error"], Value::Null);
        assert_eq!(row["input:pixels:shape"], json!([n, 64]));
        let sent_bits: Vec<u32> = values.iter().map(|v| v.to_bits()).collect();
        assert_eq!(f32_bits(&row["input:pixels"]), sent_bits, "{id}: inputs");
        for name in ["probabilities", "confidence"] {
            assert_eq!(
                f32_bits(&row[&format!("output:{name}")]),
                f32_bits(&output(answer, name)["data"]),
                "{id}: {name}"
            );
        }
        for name in ["label", "stage"] {
            assert_eq!(row[&format!("output:{name}")], output(answer, name)["data"]);
        }
        // Every row went through the features; the teachers saw only the
        // rows the student escalated, in order.
        assert_eq!(row["inner:features:y:shape"], json!([n, 32]));
        let escalated = output(answer, "stage")["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s.as_i64() != Some(0))
            .count();
        let teachers = &row["inner:teacher-heads:probabilities:shape"];
        if escalated == 0 {
            assert_eq!(*teachers, Value::Null, "{id}");
        } else {
            assert_eq!(*teachers, json!([escalated, 10]), "{id}");
        }
    }
    let escalations = requests
        .iter()
        .filter(|r| r["inner:teacher-heads:probabilities"] != Value::Null)
        .count();
    assert!(escalations > 0, "no request escalated: nothing to check");

    // The teachers, captured on their own: one row per call, under the id
    // of the request that escalated, the same tensors.
    let started = Instant::now();
    let teachers = loop {
        let read = read_with_pyarrow(&capture_dir(&server, "teacher-heads")).await;
        if read["requests"].as_array().unwrap().len() >= escalations {
            break read;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{read}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let calls = teachers["requests"].as_array().unwrap();
    assert_eq!(calls.len(), escalations);
    for call in calls {
        let outer = requests.iter().find(|r| r["id"] == call["id"]).unwrap();
        assert_eq!(call["model"], "teacher-heads");
        assert_eq!(call["input:x:shape"].as_array().unwrap()[1], 32);
        assert_eq!(
            call["output:probabilities"],
            outer["inner:teacher-heads:probabilities"]
        );
    }

    let joined = capture["joined"].as_array().unwrap();
    assert_eq!(joined.len(), 20);
    for entry in joined {
        let (_, from, ..) = sent.iter().find(|s| json!(s.0) == entry["id"]).unwrap();
        assert_eq!(entry["label"], labels[*from]);
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(aimass_python),
    ignore = "needs AIMASS_PYTHON, a Python with pyarrow (bash .ci/run makes one)"
)]
async fn a_folder_read_whole_loses_no_column_when_the_capture_changes() {
    let server = start().await;
    let rows = "aimass_capture_rows_total{model=\"digits-reshaped\"}";
    let (_, body) = pixels(0, 3);
    for i in 0..5 {
        infer(&server, "digits-reshaped", &format!("before-{i}"), &body).await;
    }
    wait_for(&server, rows, 5.0).await;
    // The operator starts keeping the teachers' answers too, and reloads.
    let text = std::fs::read_to_string(&server.config).unwrap();
    let edited = text.replace(
        "[capture.digits-reshaped]\n",
        "[capture.digits-reshaped]\ninner = [\"teacher-heads\"]\n",
    );
    assert_ne!(text, edited);
    std::fs::write(&server.config, edited).unwrap();
    let (status, answer) = server
        .post_json("/v2/repository/models/digits-reshaped/load", &json!({}))
        .await;
    assert_eq!(status, 200, "{answer}");
    for i in 0..5 {
        infer(&server, "digits-reshaped", &format!("after-{i}"), &body).await;
    }
    wait_for(&server, rows, 10.0).await;
    let seen = run_reader("read_folders.py", &capture_dir(&server, "digits-reshaped")).await;
    let folders = seen.as_object().unwrap();
    // Two datasets, each read whole by pyarrow with every column its
    // files have and every row.
    assert_eq!(folders.len(), 2, "{seen}");
    for (name, folder) in folders {
        assert_eq!(folder["rows"], folder["file_rows"], "{name}: {folder}");
        assert_eq!(
            folder["dataset_rows"], folder["file_rows"],
            "{name}: {folder}"
        );
        let mut columns: Vec<Value> = folder["columns"].as_array().unwrap().clone();
        columns.sort_by_key(|c| c.to_string());
        assert_eq!(json!(columns), folder["file_columns"], "{name}: {folder}");
        let mut columns: Vec<Value> = folder["dataset_columns"].as_array().unwrap().clone();
        columns.sort_by_key(|c| c.to_string());
        assert_eq!(json!(columns), folder["file_columns"], "{name}: {folder}");
    }
    let now = &seen["requests"];
    assert_eq!(now["rows"], 5, "{seen}");
    let teachers = json!("inner:teacher-heads:probabilities");
    assert!(
        now["columns"].as_array().unwrap().contains(&teachers),
        "{seen}"
    );
    let (name, earlier) = folders.iter().find(|(n, _)| *n != "requests").unwrap();
    assert!(name.starts_with("requests-until-"), "{name}");
    assert_eq!(earlier["rows"], 5, "{seen}");
    assert!(!earlier["columns"].as_array().unwrap().contains(&teachers));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_rate_holds() {
    let server = start().await;
    let (_, body) = pixels(0, 1);
    for i in 0..400 {
        infer(&server, "digits-sampled", &format!("sample-{i}"), &body).await;
    }
    let kept = settled(
        &server,
        "aimass_capture_rows_total{model=\"digits-sampled\"}",
    )
    .await;
    let dropped = server
        .metric("aimass_capture_dropped_total{model=\"digits-sampled\",reason=\"queue_full\"}")
        .await;
    assert_eq!(dropped, 0.0);
    // 0.3 of 400 is 120, with a standard deviation of about 9.
    assert!((85.0..=155.0).contains(&kept), "kept {kept} of 400 at 0.3");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_and_retention_keep_the_folder_under_its_limit() {
    let server = start().await;
    let (_, body) = pixels(0, 1);
    for i in 0..300 {
        infer(&server, "digits-rotated", &format!("rot-{i}"), &body).await;
    }
    wait_for(
        &server,
        "aimass_capture_rows_total{model=\"digits-rotated\"}",
        300.0,
    )
    .await;
    let written = server
        .metric("aimass_capture_files_total{model=\"digits-rotated\"}")
        .await;
    let deleted = server
        .metric("aimass_capture_files_deleted_total{model=\"digits-rotated\"}")
        .await;
    // At most 20 requests a file: at least 15 files, and the oldest went.
    assert!(written >= 15.0, "{written} files");
    assert!(deleted >= 1.0, "nothing deleted of {written} files");
    let folder = capture_dir(&server, "digits-rotated").join("requests");
    let files: Vec<u64> = std::fs::read_dir(&folder)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".parquet"))
        .map(|e| e.metadata().unwrap().len())
        .collect();
    let total: u64 = files.iter().sum();
    assert!(total <= 60_000, "{total} bytes in {} files", files.len());
    assert_eq!(files.len() as f64, written - deleted);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_that_cannot_be_written_fails_no_inference() {
    let server = start().await;
    // A file where the model's capture folder should be.
    let dir = capture_dir(&server, "digits-blocked");
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    std::fs::write(&dir, "not a folder").unwrap();
    let (_, body) = pixels(0, 2);
    for i in 0..100 {
        // `infer` asserts every answer is a 200.
        infer(&server, "digits-blocked", &format!("blocked-{i}"), &body).await;
    }
    let lost = wait_for(
        &server,
        "aimass_capture_dropped_total{model=\"digits-blocked\",reason=\"write_failed\"}",
        100.0,
    )
    .await;
    assert_eq!(lost, 100.0);
    let kept = server
        .metric("aimass_capture_rows_total{model=\"digits-blocked\"}")
        .await;
    assert_eq!(kept, 0.0);
    server.stop().await.unwrap();
}
