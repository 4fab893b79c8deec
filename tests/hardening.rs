//! Hostile clients and long uptime, over real sockets: stalled bodies and
//! headers, over-limit bodies, floods of idle connections, huge batches,
//! zero rows, malformed tensors, metric labels, the management guard, a
//! slow shadow and an engine out of instance slots.

use aimass::server::{AdminToken, Limits};
use aimass_tests::{TestServer, chaos_request, digits_test_rows, read_json};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HARDENING: &str = "configs/hardening.toml";

/// What the server takes beyond a deadline, on a shared 2-core machine
/// running a debug build.
const SLACK: Duration = Duration::from_millis(1500);

fn one_digit() -> Value {
    let row = digits_test_rows()[0].0.clone();
    json!({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": row}]})
}

async fn assert_digits_answers(server: &TestServer) {
    let (status, answer) = server
        .post_json("/v2/models/digits/infer", &one_digit())
        .await;
    assert_eq!(status, 200, "{answer}");
}

fn address(server: &TestServer) -> String {
    server.base.trim_start_matches("http://").to_string()
}

/// A connection that has sent `head` and then nothing more.
async fn stalled(server: &TestServer, head: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address(server)).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// Reads what the server sends until it closes the connection or `within`
/// passes: the status (0 for none) and the body's JSON (`null` for none).
async fn response(stream: &mut TcpStream, within: Duration) -> (u16, Value) {
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(within, stream.read_to_end(&mut bytes)).await;
    let text = String::from_utf8_lossy(&bytes);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.trim())
        .filter(|body| !body.is_empty())
        .map_or(Value::Null, |body| {
            serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
        });
    (status, body)
}

fn infer_head(model: &str, length: usize) -> String {
    format!(
        "POST /v2/models/{model}/infer HTTP/1.1\r\nhost: test\r\n\
         content-type: application/json\r\ncontent-length: {length}\r\n\r\n"
    )
}

/// The value of the first metric line that starts with `prefix`.
fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_get_408_and_hold_nothing_inference_needs() {
    let server = TestServer::start(Limits {
        max_concurrency: 16,
        body_timeout: Duration::from_millis(1000),
        ..Limits::default()
    })
    .await;
    // More stalled clients than inference permits, each mid-body.
    let mut clients = Vec::new();
    for _ in 0..20 {
        let mut stream = stalled(&server, &infer_head("digits", 10_000)).await;
        stream.write_all(b"{\"inputs\": [").await.unwrap();
        clients.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_digits_answers(&server).await;

    let started = Instant::now();
    for mut stream in clients {
        let (status, error) = response(&mut stream, Duration::from_secs(5)).await;
        assert_eq!(status, 408, "{error}");
        let message = error["error"].as_str().unwrap();
        assert!(
            message.contains("did not arrive within 1000 ms"),
            "{message}"
        );
    }
    assert!(started.elapsed() < Duration::from_millis(1000) + SLACK);
    assert_digits_answers(&server).await;
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_over_limit_content_length_is_answered_413_before_the_body() {
    let server = TestServer::start(Limits {
        max_body_bytes: 64 << 10,
        ..Limits::default()
    })
    .await;
    let mut stream = stalled(&server, &infer_head("digits", 10 << 20)).await;
    let started = Instant::now();
    let (status, error) = response(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(status, 413, "{error}");
    assert!(started.elapsed() < Duration::from_millis(500));
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("over the server's limit of 65536 bytes"),
        "{error}"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_past_the_memory_budget_get_503_and_give_it_back() {
    let server = TestServer::start(Limits {
        max_body_memory_bytes: 8 << 10,
        ..Limits::default()
    })
    .await;
    // Within --max-body-bytes, but more than all bodies together may hold.
    let big = json!({"inputs": [{"name": "pixels", "shape": [100, 64], "datatype": "FP32",
        "data": vec![1.0; 6400]}]});
    let (status, error) = server.post_json("/v2/models/digits/infer", &big).await;
    assert_eq!(status, 503, "{error}");
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("--max-body-memory-bytes"),
        "{error}"
    );
    // What it had charged was given back: small bodies still fit, again and again.
    for _ in 0..20 {
        assert_digits_answers(&server).await;
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off_and_idle_floods_are_refused() {
    let server = TestServer::start(Limits {
        max_connections: 4,
        header_timeout: Duration::from_millis(800),
        ..Limits::default()
    })
    .await;
    // Half a request line, then nothing: closed at the header deadline.
    let mut slow = stalled(&server, "POST /v2/models/digits/infer HTTP/1.1\r\nhost:").await;
    let started = Instant::now();
    let _ = response(&mut slow, Duration::from_secs(5)).await;
    assert!(
        started.elapsed() < Duration::from_millis(800) + SLACK,
        "a stalled header held its connection for {:?}",
        started.elapsed()
    );
    drop(slow);

    // Idle sockets up to the cap; the next connection is refused with a
    // reason (the test client may hold one of the four itself).
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(address(&server)).await.unwrap());
    }
    let mut probe = stalled(&server, "GET /v2/health/live HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let (status, error) = response(&mut probe, Duration::from_secs(5)).await;
    assert_eq!(status, 503, "{error}");
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("--max-connections"),
        "{error}"
    );
    // Idle connections are closed at the header deadline: room again.
    drop(idle);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let fresh = reqwest::Client::new();
    let live = fresh
        .get(server.url("/v2/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_batches_are_refused_before_any_plugin_runs() {
    let server = TestServer::start(Limits {
        max_batch_rows: 1000,
        ..Limits::default()
    })
    .await;
    // Sent as binary, so the body is small enough to arrive at once.
    let rows = 50_000usize;
    let header = json!({"inputs": [{"name": "pixels", "shape": [rows, 64], "datatype": "FP32",
        "parameters": {"binary_data_size": rows * 64 * 4}}]})
    .to_string();
    let mut body = header.clone().into_bytes();
    body.resize(body.len() + rows * 64 * 4, 0);
    let before = server.metrics_text().await;
    let started = Instant::now();
    let response = server
        .client
        .post(server.url("/v2/models/digits/infer"))
        .header("inference-header-content-length", header.len())
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, error) = read_json(response).await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(
        error["error"],
        "input `pixels` has 50000 rows; model `digits` takes at most 1000 per request \
         (the server's --max-batch-rows); split the request"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    let features = "aimass_node_duration_seconds_count{node=\"features\"}";
    assert_eq!(
        metric(&server.metrics_text().await, features),
        metric(&before, features),
        "a plugin ran"
    );
    server.stop().await.unwrap();

    // A node's own limit, and a hierarchy's limit from its members.
    let server = TestServer::start_config(HARDENING, Limits::default()).await;
    let rows = |n: usize| json!({"inputs": [{"name": "x", "shape": [n, 2], "datatype": "FP32", "data": vec![1.0; n * 2]}]});
    assert_eq!(
        server.post_json("/v2/models/echo/infer", &rows(4)).await.0,
        200
    );
    for model in ["echo", "shadowed"] {
        let (status, error) = server
            .post_json(&format!("/v2/models/{model}/infer"), &rows(5))
            .await;
        assert_eq!(status, 400, "{error}");
        assert_eq!(
            error["error"],
            format!(
                "input `x` has 5 rows; model `{model}` takes at most 4 per request \
                 (its own limit); split the request"
            )
        );
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_output_is_refused_before_any_plugin_runs() {
    let server = TestServer::start_config(HARDENING, Limits::default()).await;
    // `counter` answers how many calls its one instance has served.
    let served = || async {
        let (status, body) = server
            .post_json("/v2/models/counter/infer", &chaos_request(4))
            .await;
        assert_eq!(status, 200, "{body}");
        body["outputs"][0]["data"][0].as_f64().unwrap()
    };
    let before = served().await;
    let mut request = chaos_request(4);
    request["outputs"] = json!([{"name": "x"}, {"name": "probabilities"}]);
    let (status, error) = server.post_json("/v2/models/counter/infer", &request).await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(
        error["error"],
        "model `counter` has no output `probabilities` (its outputs: x)"
    );
    request["outputs"] = json!([{"name": "x"}, {"name": "x"}]);
    let (status, error) = server.post_json("/v2/models/counter/infer", &request).await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"], "output `x` is asked for twice");
    // Only the counting calls themselves reached the plugin.
    assert_eq!(served().await, before + 1.0);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_rows_are_refused_the_same_way_by_every_kind_of_model() {
    let server = TestServer::start_config("configs/hierarchies.toml", Limits::default()).await;
    let models = [
        ("scale", "node"),
        ("student-pipeline", "sequence"),
        ("two-heads", "dag"),
        ("teachers-mean", "ensemble"),
        ("by-tensor", "switch"),
        ("student-then-teachers", "cascade"),
        ("canary", "splitter"),
        ("student-shadowed", "shadow"),
    ];
    for (model, kind) in models {
        let (_, metadata) = server.get_json(&format!("/v2/models/{model}")).await;
        assert_eq!(metadata["platform"], format!("aimass_{kind}"));
        let input = &metadata["inputs"][0];
        let mut shape: Vec<i64> = serde_json::from_value(input["shape"].clone()).unwrap();
        shape[0] = 0;
        for d in shape.iter_mut().skip(1) {
            *d = (*d).max(1);
        }
        let name = input["name"].as_str().unwrap();
        let request = json!({"inputs": [{"name": name, "shape": shape,
            "datatype": input["datatype"], "data": []}]});
        let (status, error) = server
            .post_json(&format!("/v2/models/{model}/infer"), &request)
            .await;
        assert_eq!(status, 400, "{kind} `{model}`: {error}");
        assert_eq!(
            error["error"],
            format!("input `{name}` has 0 rows; model `{model}` needs at least one"),
            "{kind}"
        );
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_that_disagrees_with_its_shape_or_type_is_refused() {
    let server = TestServer::start(Limits::default()).await;
    let row: Vec<f32> = digits_test_rows()[0].0.clone();
    let pixels = |shape: Value, data: Value| json!({"inputs": [{"name": "pixels", "shape": shape, "datatype": "FP32", "data": data}]});
    let halves = json!([row[..32], row[32..]]);
    let mut huge = row.iter().map(|&v| json!(v)).collect::<Vec<_>>();
    huge[3] = serde_json::from_str("1e39").unwrap();
    let cases = [
        (
            pixels(json!([1, 64]), halves),
            "input `pixels`: its data is nested as [2, 32] but its shape is [1, 64]",
        ),
        (
            pixels(json!([1, 64]), json!([[row]])),
            "input `pixels`: its data is nested as [1, 1, 64] but its shape is [1, 64]",
        ),
        (
            pixels(json!([1, 64]), json!([row[..32], row[..31]])),
            "input `pixels`: its data is not a regular array",
        ),
        (
            pixels(json!([1, 64]), json!(huge)),
            "input `pixels`: element 3 is 1000000000000000000000000000000000000000, \
             outside the range of FP32",
        ),
    ];
    for (request, expected) in cases {
        let (status, error) = server.post_json("/v2/models/digits/infer", &request).await;
        assert_eq!(status, 400, "{error}");
        let message = error["error"].as_str().unwrap();
        assert!(message.starts_with(expected), "{message}");
    }
    // Flat and exactly nested data still answer.
    for data in [json!(row), json!([row])] {
        let (status, _) = server
            .post_json("/v2/models/digits/infer", &pixels(json!([1, 64]), data))
            .await;
        assert_eq!(status, 200);
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_json_whoever_produces_it() {
    let server = TestServer::start(Limits::default()).await;
    let address = address(&server);
    let requests = [
        // Not UTF-8 once percent-decoded: the path extractor refuses it.
        "GET /v2/models/%FF%FE/ready HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".to_string(),
        // A body that is not UTF-8 where JSON is expected.
        format!(
            "{}\u{0}\u{1}",
            infer_head("digits", 2).replace("\r\n\r\n", "\r\nconnection: close\r\n\r\n")
        ),
        // A chunked body that breaks off.
        "POST /v2/models/digits/infer HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"
            .to_string(),
        "DELETE /v2/models/digits HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".to_string(),
        "GET /nowhere HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".to_string(),
        // What hyper itself refuses, before any handler: a malformed
        // request line, a malformed header, too many headers.
        "GARBAGE\r\n\r\n".to_string(),
        "GET /v2 HTTP/1.1\r\nhost x\r\n\r\n".to_string(),
        format!(
            "GET /v2 HTTP/1.1\r\n{}\r\n",
            (0..200).map(|i| format!("x-{i}: y\r\n")).collect::<String>()
        ),
    ];
    for request in requests {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let (status, body) = response(&mut stream, Duration::from_secs(5)).await;
        assert!((400..500).contains(&status), "{status} for {request:?}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{status} {body} for {request:?}"
        );
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_names_never_become_metric_series() {
    let server = TestServer::start(Limits::default()).await;
    for name in ["nope-4711", "nope-4712"] {
        let (status, _) = server
            .post_json(&format!("/v2/repository/models/{name}/load"), &json!({}))
            .await;
        assert_eq!(status, 404);
    }
    let text = server.metrics_text().await;
    assert!(!text.contains("nope-47"), "a client's name became a label");
    assert!(
        text.contains("aimass_model_loads_total{model=\"(unknown)\",outcome=\"error\"} 2"),
        "{text}"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_calls_need_the_admin_token() {
    let token = AdminToken::new("s3cret").unwrap();
    let server = TestServer::start_guarded("configs/serve.toml", Limits::default(), token).await;
    let call = |path: &str, bearer: Option<&str>| {
        let mut request = server.client.post(server.url(path)).body("{}");
        if let Some(bearer) = bearer {
            request = request.header("authorization", format!("Bearer {bearer}"));
        }
        request.send()
    };
    for (bearer, status) in [(None, 401), (Some("wrong"), 401), (Some("s3cret"), 200)] {
        for path in [
            "/v2/repository/index",
            "/v2/repository/models/scale/unload",
            "/v2/repository/models/scale/load",
        ] {
            let (got, body) = read_json(call(path, bearer).await.unwrap()).await;
            assert_eq!(got, status, "{path} with {bearer:?}: {body}");
            if status == 401 {
                assert!(
                    body["error"].as_str().unwrap().contains("admin token"),
                    "{body}"
                );
            }
        }
    }
    // Feedback is a write too: refused without the token; with it, this
    // config's `scale` is not captured (409).
    for (bearer, status) in [(None, 401), (Some("s3cret"), 409)] {
        let request = server
            .client
            .post(server.url("/v2/models/scale/feedback"))
            .body(r#"{"id": "r1", "label": 1}"#);
        let request = match bearer {
            Some(bearer) => request.header("authorization", format!("Bearer {bearer}")),
            None => request,
        };
        let (got, body) = read_json(request.send().await.unwrap()).await;
        assert_eq!(got, status, "feedback with {bearer:?}: {body}");
    }
    // Inference and metadata need no token.
    assert_digits_answers(&server).await;
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_shadow_is_bounded_and_gets_the_request_parameters() {
    let server = TestServer::start_config(HARDENING, Limits::default()).await;
    let request =
        json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0]}]});
    // The shadow loops for 1.5 s; the primary answers at once, every time.
    let calls = (0..12).map(|_| {
        let server = &server;
        let request = &request;
        async move {
            let started = Instant::now();
            let (status, _) = server.post_json("/v2/models/shadowed/infer", request).await;
            (status, started.elapsed())
        }
    });
    for (status, took) in futures::future::join_all(calls).await {
        assert_eq!(status, 200);
        assert!(
            took < Duration::from_millis(1000),
            "the primary waited {took:?}"
        );
    }
    let text = server.metrics_text().await;
    let dropped = metric(&text, "aimass_shadow_dropped_total{shadow=\"shadowed\"}");
    assert!(dropped.is_some_and(|n| n >= 1.0), "{text}");

    // A switch as the shadow routes by the request's own parameters.
    let seen = "aimass_node_duration_seconds_count{node=\"seen\"}";
    let before = metric(&server.metrics_text().await, seen).unwrap_or(0.0);
    let mut routed = request.clone();
    routed["parameters"] = json!({"branch": "a"});
    assert_eq!(
        server.post_json("/v2/models/routed/infer", &routed).await.0,
        200
    );
    let started = Instant::now();
    loop {
        let now = metric(&server.metrics_text().await, seen).unwrap_or(0.0);
        if now >= before + 2.0 {
            break; // the primary's call and the shadow's
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the shadow's switch did not reach `seen` ({before} → {now})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_out_of_instance_slots_answers_503() {
    let server = TestServer::start_config(HARDENING, Limits::default()).await;
    let request =
        json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0]}]});
    // Six slots, four warm instances: a fourth looping call finds none.
    let calls = (0..4).map(|_| server.post_json("/v2/models/slow/infer", &request));
    let answers = futures::future::join_all(calls).await;
    let refused: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == 503)
        .map(|(_, body)| body)
        .collect();
    assert!(!refused.is_empty(), "{answers:?}");
    for body in refused {
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("no free instance slot"),
            "{body}"
        );
    }
    let text = server.metrics_text().await;
    assert!(
        text.contains("aimass_plugin_failures_total{node=\"slow\",kind=\"capacity\"}"),
        "{text}"
    );
    let echo =
        json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0]}]});
    assert_eq!(
        server.post_json("/v2/models/echo/infer", &echo).await.0,
        200
    );
    server.stop().await.unwrap();
}
