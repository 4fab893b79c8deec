//! Model lifecycle through the repository API: a reload of a node reaches
//! every hierarchy that calls it (directly or through another) with no
//! failed request, a hierarchy's reload starts no node twice, and unloading
//! a node that served hierarchies still call is refused unless they go too.
//! One test, on one server: the live-instance gauge is process-wide.

use aimass::server::Limits;
use aimass_tests::{TestServer, set_scale};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn request() -> Value {
    json!({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 1.0, 1.0, 1.0]}]})
}

fn first_value(answer: &Value) -> f64 {
    answer["outputs"][0]["data"][0].as_f64().expect("y[0]")
}

/// `aimass_node_instances{node="NODE"}` from `/metrics`.
async fn live_instances(server: &TestServer, node: &str) -> f64 {
    let text = server.metrics_text().await;
    let series = format!("aimass_node_instances{{node=\"{node}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
}

/// Waits until the gauge reads `want`: instances of a replaced pool go
/// once the last request holding it finishes.
async fn wait_for_instances(server: &TestServer, node: &str, want: f64) {
    for _ in 0..100 {
        if live_instances(server, node).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "`{node}` has {} live instances, expected {want}",
        live_instances(server, node).await
    );
}

async fn post(server: &TestServer, path: &str, body: Option<Value>) -> (u16, Value) {
    match body {
        Some(body) => server.post_json(path, &body).await,
        None => {
            let response = server.client.post(server.url(path)).send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_reaches_every_hierarchy_and_unload_respects_users() {
    let server = TestServer::start_config("configs/lifecycle.toml", Limits::default()).await;
    assert_eq!(live_instances(&server, "lc-scale").await, 1.0);

    // Clients on the node and on both hierarchies, all through the reloads.
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for model in ["lc-scale", "lc-twice", "lc-four-times"] {
        let client = server.client.clone();
        let url = server.url(&format!("/v2/models/{model}/infer"));
        let stop = stop.clone();
        clients.push(tokio::spawn(async move {
            let (mut failures, mut seen) = (Vec::new(), Vec::<f64>::new());
            while !stop.load(Ordering::Relaxed) {
                match client.post(&url).body(request().to_string()).send().await {
                    Ok(r) if r.status() == 200 => {
                        let y = first_value(&r.json::<Value>().await.unwrap());
                        if seen.last() != Some(&y) {
                            seen.push(y);
                        }
                    }
                    Ok(r) => failures.push(format!("{}: {}", r.status(), r.text().await.unwrap())),
                    Err(e) => failures.push(e.to_string()),
                }
            }
            (failures, seen)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    set_scale(&server.config, 2.0, 3.0);
    let (status, body) = post(&server, "/v2/repository/models/lc-scale/load", None).await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The hierarchy reloaded alone: rebuilt around the running node.
    let (status, body) = post(&server, "/v2/repository/models/lc-twice/load", None).await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);

    for (client, scale) in clients.into_iter().zip([1, 2, 4]) {
        let (failures, seen) = client.await.unwrap();
        assert!(failures.is_empty(), "failed during reloads: {failures:?}");
        // Before: 2^k; after: 3^k, and never the old answer after the new.
        let (before, after) = (2f64.powi(scale), 3f64.powi(scale));
        assert_eq!(seen, vec![before, after], "x{scale}");
    }
    for (model, want) in [
        ("lc-scale", 3.0),
        ("lc-twice", 9.0),
        ("lc-four-times", 81.0),
    ] {
        let (status, answer) = server
            .post_json(&format!("/v2/models/{model}/infer"), &request())
            .await;
        assert_eq!((status, first_value(&answer)), (200, want), "{model}");
    }
    // One pool of `lc-scale` is left: the old one went with its last
    // request, and the hierarchy's reload started none.
    wait_for_instances(&server, "lc-scale", 1.0).await;
    assert_eq!(live_instances(&server, "lc-other").await, 1.0);

    // Unloading a node that served hierarchies call is refused, naming
    // them, unless they go too. (One test: the gauge is process-wide.)
    let unload = "/v2/repository/models/lc-scale/unload";
    let (status, body) = post(&server, unload, None).await;
    assert_eq!(status, 409, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("lc-four-times, lc-twice") && error.contains("unload_users"),
        "{error}"
    );
    let infer = |model: &'static str| {
        let server = &server;
        async move {
            server
                .post_json(&format!("/v2/models/{model}/infer"), &request())
                .await
                .0
        }
    };
    assert_eq!(infer("lc-four-times").await, 200);

    let (status, body) = post(
        &server,
        unload,
        Some(json!({"parameters": {"unload_users": "yes"}})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(
        &server,
        unload,
        Some(json!({"parameters": {"unload_users": true}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for model in ["lc-scale", "lc-twice", "lc-four-times"] {
        assert_eq!(infer(model).await, 503, "{model}");
    }
    assert_eq!(infer("lc-other").await, 200);

    // Loading the outer hierarchy starts what it calls that is not serving.
    let (status, body) = post(&server, "/v2/repository/models/lc-four-times/load", None).await;
    assert_eq!(status, 200, "{body}");
    for model in ["lc-scale", "lc-twice", "lc-four-times"] {
        assert_eq!(infer(model).await, 200, "{model}");
    }
    server.stop().await.unwrap();
}

/// The answer of `path` (`/v2/models/...`): status, first value, version.
/// Serves the config at `relative` with every `from` replaced by `to`.
async fn start_edited(relative: &str, from: &str, to: &str) -> TestServer {
    let config = aimass_tests::write_config(relative);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace(from, to)).unwrap();
    TestServer::start_file(config).await
}

async fn answer(server: &TestServer, path: &str) -> (u16, f64, String) {
    let (status, body) = server.post_json(path, &request()).await;
    if status != 200 {
        return (
            status,
            f64::NAN,
            body["error"].as_str().unwrap_or("").to_string(),
        );
    }
    let version = body["model_version"].as_str().unwrap_or("").to_string();
    (status, first_value(&body), version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_are_served_by_policy_addressed_by_path_and_followed_by_hierarchies() {
    let server = TestServer::start_config("configs/versions.toml", Limits::default()).await;
    let infer = |path: &str| format!("/v2/models/{path}/infer");
    assert_eq!(
        answer(&server, &infer("vs-scale")).await,
        (200, 3.0, "3".into())
    );
    assert_eq!(
        answer(&server, &infer("vs-scale/versions/2")).await,
        (200, 2.0, "2".into())
    );
    let (status, _, error) = answer(&server, &infer("vs-scale/versions/1")).await;
    assert_eq!(status, 404);
    assert!(
        error.contains("version 1 is not served") && error.contains("2, 3"),
        "{error}"
    );
    let (status, _, error) = answer(&server, &infer("vs-scale/versions/9")).await;
    assert_eq!(status, 404);
    assert!(error.contains("has no version `9`"), "{error}");
    assert_eq!(answer(&server, &infer("vs-follow")).await.1, 3.0);
    assert_eq!(answer(&server, &infer("vs-pinned")).await.1, 2.0);

    let metadata: Value = server
        .client
        .get(server.url("/v2/models/vs-scale"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["name"], "vs-scale");
    assert_eq!(metadata["versions"], json!(["2", "3"]));
    let (status, index) = server.post_json("/v2/repository/index", &json!({})).await;
    assert_eq!(status, 200);
    let versions: Vec<&str> = index
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "vs-scale")
        .map(|e| e["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["2", "3"]);
    let (status, stats) = server
        .client
        .get(server.url("/v2/models/vs-scale/versions/2/stats"))
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(status, 200);
    let stats: Value = stats.json().await.unwrap();
    assert_eq!(stats["model_stats"][0]["version"], "2");
    assert_eq!(stats["model_stats"][0]["name"], "vs-scale");

    // The policy changes to version 1 alone: loading the model applies it,
    // and the hierarchy following the default moves with it.
    let text = std::fs::read_to_string(&server.config).unwrap();
    std::fs::write(&server.config, text.replace("latest = 2", "specific = [1]")).unwrap();
    let (status, body) = post(&server, "/v2/repository/models/vs-scale/load", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        answer(&server, &infer("vs-scale")).await,
        (200, 1.0, "1".into())
    );
    assert_eq!(answer(&server, &infer("vs-scale/versions/3")).await.0, 404);
    assert_eq!(answer(&server, &infer("vs-follow")).await.1, 1.0);
    // A hierarchy pinning a version the policy dropped keeps it running.
    assert_eq!(answer(&server, &infer("vs-pinned")).await.1, 2.0);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_started_only_for_a_pin_is_not_served_to_clients() {
    // The policy serves version 3 alone; `vs-pinned` pins version 2, which
    // is started for it at startup.
    let server = start_edited("configs/versions.toml", "latest = 2", "latest = 1").await;
    let infer = |path: &str| format!("/v2/models/{path}/infer");
    assert_eq!(answer(&server, &infer("vs-pinned")).await.1, 2.0);
    assert_eq!(answer(&server, &infer("vs-scale")).await.1, 3.0);
    // ... for the hierarchy alone: clients cannot reach it, by any path or
    // protocol.
    for path in ["vs-scale/versions/2", "vs-scale@2"] {
        let (status, _, error) = answer(&server, &infer(path)).await;
        assert_eq!(status, 404, "{path}: {error}");
        assert!(error.contains("not served"), "{path}: {error}");
        let base = format!("/v2/models/{path}");
        assert_eq!(server.get_json(&base).await.0, 404, "{base}");
        assert_eq!(
            server.get_json(&format!("{base}/ready")).await.0,
            404,
            "{base}/ready"
        );
    }
    let (_, metadata) = server.get_json("/v2/models/vs-scale").await;
    assert_eq!(metadata["versions"], json!(["3"]), "{metadata}");
    pinned_version_is_unreachable_over_grpc(&server).await;
    server.stop().await.unwrap();
}

async fn pinned_version_is_unreachable_over_grpc(server: &TestServer) {
    use aimass::server::grpc::proto as pb;
    let mut client =
        pb::grpc_inference_service_client::GrpcInferenceServiceClient::connect(server.grpc.clone())
            .await
            .unwrap();
    for (name, version) in [("vs-scale", "2"), ("vs-scale@2", "")] {
        let infer = pb::ModelInferRequest {
            model_name: name.into(),
            model_version: version.into(),
            inputs: vec![pb::model_infer_request::InferInputTensor {
                name: "x".into(),
                datatype: "FP32".into(),
                shape: vec![1, 4],
                contents: Some(pb::InferTensorContents {
                    fp32_contents: vec![1.0; 4],
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let error = client.model_infer(infer).await.unwrap_err();
        assert_eq!(
            error.code(),
            tonic::Code::NotFound,
            "{name} {version}: {error}"
        );
        let ready = client
            .model_ready(pb::ModelReadyRequest {
                name: name.into(),
                version: version.into(),
            })
            .await;
        assert!(
            ready
                .as_ref()
                .is_err_and(|e| e.code() == tonic::Code::NotFound)
                || ready.as_ref().is_ok_and(|r| !r.get_ref().ready),
            "{name} {version}: {ready:?}"
        );
        let metadata = client
            .model_metadata(pb::ModelMetadataRequest {
                name: name.into(),
                version: version.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(metadata.code(), tonic::Code::NotFound, "{name} {version}");
    }
}

/// Sends `x` to `model` until its rollout's state starts with `until`;
/// returns the versions that answered (status, version) in order of first
/// appearance, and the final state.
async fn drive_rollout(
    server: &TestServer,
    model: &str,
    x: f64,
    until: &str,
) -> (Vec<(u16, String)>, Value) {
    let body =
        json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [x, 2.0]}]});
    let mut seen: Vec<(u16, String)> = Vec::new();
    for _ in 0..2000 {
        let (status, answer) = server
            .post_json(&format!("/v2/models/{model}/infer"), &body)
            .await;
        let version = answer["model_version"].as_str().unwrap_or("").to_string();
        if !seen.contains(&(status, version.clone())) {
            seen.push((status, version));
        }
        let (_, config) = server.get_json(&format!("/v2/models/{model}/config")).await;
        let state = config["rollout"]["state"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if state.starts_with(until) {
            return (seen, config["rollout"].clone());
        }
        assert!(
            state.starts_with("step"),
            "the rollout of `{model}` ended `{state}`, not `{until}`; answers: {seen:?}"
        );
    }
    panic!("the rollout of `{model}` never reached `{until}`; answers: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_version_is_promoted_and_a_bad_one_rolled_back_by_the_host() {
    let server = TestServer::start_config("configs/rollout.toml", Limits::default()).await;
    let (_, metadata) = server.get_json("/v2/models/ro-good").await;
    assert_eq!(metadata["versions"], json!(["1", "2"]));

    // Both versions answer during the steps; version 2 alone once promoted.
    let (seen, status) = drive_rollout(&server, "ro-good", 1.0, "promoted").await;
    assert!(seen.contains(&(200, "1".into())), "{seen:?}");
    assert!(seen.contains(&(200, "2".into())), "{seen:?}");
    assert!(seen.iter().all(|(s, _)| *s == 200), "{seen:?}");
    assert_eq!(status["share_to"], 1.0);
    for _ in 0..20 {
        assert_eq!(
            answer(&server, "/v2/models/ro-good/infer").await.2,
            "2",
            "promoted: every request to version 2"
        );
    }

    // A load while the rollout runs restarts it, and the model keeps
    // answering (it answered 503 "version 0 is unloaded" until reloaded).
    let (status, body) = post(&server, "/v2/repository/models/ro-good/load", None).await;
    assert_eq!(status, 200, "{body}");
    let (_, config) = server.get_json("/v2/models/ro-good/config").await;
    let state = config["rollout"]["state"].as_str().unwrap_or("");
    assert!(state.starts_with("step"), "not restarted: {config}");
    for _ in 0..20 {
        let (code, _, error) = answer(&server, "/v2/models/ro-good/infer").await;
        assert_eq!(code, 200, "after a load during the rollout: {error}");
    }
    let (seen, _) = drive_rollout(&server, "ro-good", 1.0, "promoted").await;
    assert!(seen.iter().all(|(s, _)| *s == 200), "{seen:?}");

    // Version 2 refuses what version 1 answers: rolled back at once.
    let (seen, status) = drive_rollout(&server, "ro-bad", -1.0, "rolled back").await;
    assert!(seen.contains(&(400, String::new())), "{seen:?}");
    let reason = status["state"].as_str().unwrap();
    assert!(
        reason.contains("error rate 100.0% against 0.0% for version 1"),
        "{reason}"
    );
    assert_eq!(status["share_to"], 0.0);
    let body = json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [-1.0, 2.0]}]});
    for _ in 0..20 {
        let (code, answer) = server.post_json("/v2/models/ro-bad/infer", &body).await;
        assert_eq!((code, answer["model_version"].as_str()), (200, Some("1")));
    }

    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        // Promoted, restarted by the load, promoted again.
        "aimass_rollout_events_total{model=\"ro-good\",event=\"promoted\"} 2",
        "aimass_rollout_events_total{model=\"ro-bad\",event=\"rolled_back\"} 1",
        "aimass_rollout_share{model=\"ro-bad\"} 0",
    ] {
        assert!(metrics.contains(line), "no `{line}` in /metrics");
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_loads_queue_and_each_succeeds_under_traffic() {
    // Its own names: the live-instance gauge the other test reads is
    // process-wide, by node.
    let server = start_edited("configs/lifecycle.toml", "lc-", "ol-").await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for model in ["ol-scale", "ol-twice", "ol-four-times", "ol-other"] {
        let (client, url, stop) = (
            server.client.clone(),
            server.url(&format!("/v2/models/{model}/infer")),
            stop.clone(),
        );
        clients.push(tokio::spawn(async move {
            let (mut answered, mut failed) = (0, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let r = client.post(&url).body(request().to_string()).send().await;
                match r {
                    Ok(r) if r.status() == 200 => answered += 1,
                    Ok(r) => failed.push(format!("{model}: {}", r.text().await.unwrap())),
                    Err(e) => failed.push(format!("{model}: {e}")),
                }
            }
            (answered, failed)
        }));
    }
    // Loads of a node and of the hierarchies standing on it, all at once,
    // three rounds (they failed with 400 "other loads kept replacing...").
    let mut loads = Vec::new();
    for round in 0..3 {
        for model in ["ol-scale", "ol-twice", "ol-four-times", "ol-other"] {
            let (client, url) = (
                server.client.clone(),
                server.url(&format!("/v2/repository/models/{model}/load")),
            );
            loads.push(tokio::spawn(async move {
                let r = client.post(&url).send().await.unwrap();
                (round, model, r.status().as_u16(), r.text().await.unwrap())
            }));
        }
    }
    for load in loads {
        let (round, model, status, body) = load.await.unwrap();
        assert_eq!(status, 200, "round {round}, load of {model}: {body}");
    }
    // Each can be loaded again afterwards.
    for model in ["ol-scale", "ol-twice"] {
        let (status, body) = post(
            &server,
            &format!("/v2/repository/models/{model}/load"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{model}: {body}");
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let (answered, failed) = client.await.unwrap();
        assert!(answered > 0);
        assert!(
            failed.is_empty(),
            "{} failed: {:?}",
            failed.len(),
            &failed[..failed.len().min(5)]
        );
    }
    server.stop().await.unwrap();
}
