//! Hot reload through the repository API, under a steady stream of
//! requests: none may fail, and the new model answers once it is loaded.

use aimass::server::Limits;
use aimass_tests::{TestServer, set_scale};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn scale_request() -> Value {
    json!({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}]})
}

/// The factor the `scale` node applies, read from one answer.
fn factor(answer: &Value) -> f64 {
    answer["outputs"][0]["data"][0].as_f64().expect("y[0]")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloading_under_load_fails_no_request() {
    let server = TestServer::start(Limits::default()).await;
    // The scaler's .wasm, copied beside the config so the test can break it.
    let plugin = server.config.with_file_name("scaler.wasm");
    std::fs::copy(aimass_tests_plugin(), &plugin).unwrap();
    let text = std::fs::read_to_string(&server.config).unwrap();
    std::fs::write(
        &server.config,
        text.replace(aimass_tests_plugin(), &plugin.display().to_string()),
    )
    .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let client = server.client.clone();
        let url = server.url("/v2/models/scale/infer");
        let stop = stop.clone();
        clients.push(tokio::spawn(async move {
            let (mut answered, mut failures, mut factors) = (0u32, Vec::new(), Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let response = client
                    .post(&url)
                    .body(scale_request().to_string())
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status() == 200 => {
                        answered += 1;
                        let f = factor(&r.json::<Value>().await.unwrap());
                        if factors.last() != Some(&f) {
                            factors.push(f);
                        }
                    }
                    Ok(r) => failures.push(format!(
                        "{}: {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    )),
                    Err(e) => failures.push(e.to_string()),
                }
            }
            (answered, failures, factors)
        }));
    }
    let load = |model: &str| {
        server
            .client
            .post(server.url(&format!("/v2/repository/models/{model}/load")))
            .send()
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut scale = 2.0;
    for next in [3.0, 4.0, 5.0] {
        set_scale(&server.config, scale, next);
        scale = next;
        let response = load("scale").await.unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // A broken .wasm on disk is refused and the old one keeps serving...
    std::fs::write(&plugin, b"not wasm").unwrap();
    set_scale(&server.config, scale, 6.0);
    let response = load("scale").await.unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("not a WebAssembly component"),
        "{error}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    // ...and the repaired one is read from disk again.
    std::fs::copy(aimass_tests_plugin(), &plugin).unwrap();
    assert_eq!(load("scale").await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;

    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for client in clients {
        let (answered, failures, factors) = client.await.unwrap();
        assert!(
            failures.is_empty(),
            "failed requests during reload: {failures:?}"
        );
        assert_eq!(factors.first(), Some(&2.0), "{factors:?}");
        assert_eq!(factors.last(), Some(&6.0), "{factors:?}");
        // Each client sees the versions in order: no answer from an old
        // model after a newer one answered it.
        assert!(factors.windows(2).all(|w| w[0] < w[1]), "{factors:?}");
        total += answered;
    }
    assert!(total > 100, "only {total} requests answered");
    let (status, answer) = server
        .post_json("/v2/models/scale/infer", &scale_request())
        .await;
    assert_eq!((status, factor(&answer)), (200, 6.0));
    server.stop().await.unwrap();
}

fn aimass_tests_plugin() -> &'static str {
    aimass_test_artifacts::SCALER
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unload_load_and_their_errors() {
    let server = TestServer::start(Limits::default()).await;
    let post = |path: &str, body: &str| {
        server
            .client
            .post(server.url(path))
            .body(body.to_string())
            .send()
    };

    assert_eq!(
        post("/v2/repository/models/scale/unload", "")
            .await
            .unwrap()
            .status(),
        200
    );
    let (status, error) = server
        .post_json("/v2/models/scale/infer", &scale_request())
        .await;
    assert_eq!(status, 503);
    assert_eq!(
        error["error"],
        "model `scale` version 1 is unloaded; load it with POST /v2/repository/models/scale/load"
    );
    assert_eq!(server.get_json("/v2/models/scale/ready").await.0, 503);
    let (_, index) = server.post_json("/v2/repository/index", &json!({})).await;
    assert!(index.as_array().unwrap().contains(
        &json!({"name": "scale", "version": "1", "state": "UNAVAILABLE", "reason": "unloaded"})
    ));
    let (_, ready) = server
        .post_json("/v2/repository/index", &json!({"ready": true}))
        .await;
    assert!(
        !ready
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "scale")
    );
    // Other models are untouched.
    assert_eq!(server.get_json("/v2/models/digits/ready").await.0, 200);

    assert_eq!(
        post("/v2/repository/models/scale/load", "{}")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        server
            .post_json("/v2/models/scale/infer", &scale_request())
            .await
            .0,
        200
    );

    let (status, error) =
        aimass_tests::read_json(post("/v2/repository/models/nope/load", "").await.unwrap()).await;
    assert_eq!(status, 404);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .ends_with("has no model `nope`; add it as a node or a hierarchy"),
        "{error}"
    );
    assert_eq!(
        post("/v2/repository/models/nope/unload", "")
            .await
            .unwrap()
            .status(),
        404
    );
    let (status, error) = aimass_tests::read_json(
        post(
            "/v2/repository/models/scale/load",
            r#"{"parameters": {"config": "{}"}}"#,
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("load parameter `config` is not supported")
    );

    // A config broken on disk: 400 naming the file, line and key; the model
    // that was serving keeps serving.
    let text = std::fs::read_to_string(&server.config).unwrap();
    std::fs::write(
        &server.config,
        text.replace(
            "params = { scale = 2.0, features = 4 }",
            "params = { scale = 2.0, features = -4 }",
        ),
    )
    .unwrap();
    let (status, error) =
        aimass_tests::read_json(post("/v2/repository/models/scale/load", "").await.unwrap()).await;
    assert_eq!(status, 400);
    let message = error["error"].as_str().unwrap();
    assert!(
        message.contains("serve.toml:")
            && message.contains("nodes.scale.params")
            && message.contains("parameter `features` must be positive, got -4"),
        "{message}"
    );
    let (status, answer) = server
        .post_json("/v2/models/scale/infer", &scale_request())
        .await;
    assert_eq!((status, factor(&answer)), (200, 2.0));
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("aimass_model_loads_total{model=\"scale\",outcome=\"error\"}"),
        "{metrics}"
    );
    server.stop().await.unwrap();
}

/// Waits until `scale` answers with `want`, or fails after 10 s.
async fn until_scale(server: &TestServer, want: f64) {
    for _ in 0..200 {
        let (status, answer) = server
            .post_json("/v2/models/scale/infer", &scale_request())
            .await;
        if status == 200 && factor(&answer) == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("`scale` never answered with factor {want}");
}

/// `scale` answers with `want` now and for the next `polls` polls.
async fn stays_scale(server: &TestServer, want: f64, polls: u32) {
    for _ in 0..polls {
        let (status, answer) = server
            .post_json("/v2/models/scale/infer", &scale_request())
            .await;
        assert_eq!((status, factor(&answer)), (200, want));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reloads_a_changed_model_and_keeps_serving_through_broken_ones() {
    let server = TestServer::start_watching("configs/serve.toml", Duration::from_millis(50)).await;
    let plugin = server.config.with_file_name("scaler.wasm");
    std::fs::copy(aimass_tests_plugin(), &plugin).unwrap();
    let text = std::fs::read_to_string(&server.config).unwrap();
    std::fs::write(
        &server.config,
        text.replace(aimass_tests_plugin(), &plugin.display().to_string()),
    )
    .unwrap();
    // The plugin's path changed: every node of `scaler` reloads, same answers.
    stays_scale(&server, 2.0, 3).await;

    set_scale(&server.config, 2.0, 3.0);
    until_scale(&server, 3.0).await;

    // A broken plugin file is refused; the old `scale` keeps serving.
    std::fs::write(&plugin, b"not wasm").unwrap();
    set_scale(&server.config, 3.0, 4.0);
    stays_scale(&server, 3.0, 8).await;
    // Repaired, it is loaded with the new params.
    std::fs::copy(aimass_tests_plugin(), &plugin).unwrap();
    until_scale(&server, 4.0).await;

    // A config that is not even TOML changes nothing; fixed, it loads.
    let good = std::fs::read_to_string(&server.config).unwrap();
    std::fs::write(&server.config, format!("{good}\n[nodes.scale\n")).unwrap();
    stays_scale(&server, 4.0, 5).await;
    std::fs::write(&server.config, &good).unwrap();
    set_scale(&server.config, 4.0, 5.0);
    until_scale(&server, 5.0).await;
    server.stop().await.unwrap();
}

/// The `digits` cascade's probabilities and stages for `rows`.
async fn digits_answer(server: &TestServer, rows: &[(Vec<f32>, i64)]) -> (Vec<f64>, Vec<i64>) {
    let data: Vec<Vec<f32>> = rows.iter().map(|(p, _)| p.clone()).collect();
    let request = json!({"inputs": [{"name": "pixels", "shape": [rows.len(), 64], "datatype": "FP32", "data": data}]});
    let (status, answer) = server.post_json("/v2/models/digits/infer", &request).await;
    assert_eq!(status, 200, "{answer}");
    let output = |name: &str| {
        answer["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == name)
            .map(|o| o["data"].as_array().unwrap().clone())
            .unwrap()
    };
    let probabilities = output("probabilities")
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let stages = output("stage")
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    (probabilities, stages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloading_the_student_moves_the_cascade_that_calls_it() {
    let server = TestServer::start(Limits::default()).await;
    let rows = &aimass_tests::digits_test_rows()[..20];
    let (before, stages) = digits_answer(&server, rows).await;
    assert!(
        stages.contains(&0),
        "the student answers some rows: {stages:?}"
    );

    // The student becomes another model (teacher 0's graph): the cascade
    // inside `digits` must answer with it, without reloading `digits`.
    let text = std::fs::read_to_string(&server.config).unwrap();
    let student = "graphs = [\"student\"]\nparams = { graph = \"student\",";
    assert!(text.contains(student));
    let swapped = "graphs = [\"teacher_0\"]\nparams = { graph = \"teacher_0\",";
    std::fs::write(&server.config, text.replace(student, swapped)).unwrap();
    let load = server
        .client
        .post(server.url("/v2/repository/models/student-head/load"))
        .send()
        .await
        .unwrap();
    assert_eq!(load.status(), 200, "{}", load.text().await.unwrap());
    let (after, _) = digits_answer(&server, rows).await;
    assert_ne!(
        before, after,
        "the cascade still answers with the old student"
    );

    // Back to the student: the same answers as at the start.
    std::fs::write(&server.config, &text).unwrap();
    let load = server
        .client
        .post(server.url("/v2/repository/models/student-head/load"))
        .send()
        .await
        .unwrap();
    assert_eq!(load.status(), 200);
    assert_eq!(digits_answer(&server, rows).await.0, before);
    server.stop().await.unwrap();
}
