//! The web page in a real headless browser (Chromium driven by
//! puppeteer-core, tests/ui/check.mjs): the example's `digits` hierarchy
//! shows every node and edge, its figures move under traffic, and a member
//! that fails shows its errors on its own node. A screenshot of each is
//! kept in `$CARGO_TARGET_TMPDIR`.
//!
//! Needs Node, `npm ci --prefix tests/ui` and Chromium (`.ci/run` installs
//! them); without `AIMASS_CHROMIUM` the test is reported as ignored, unless
//! `AIMASS_REQUIRE_BROWSER` is set, as it is in CI.

use aimass::server::Limits;
use aimass_tests::{TestServer, digits_test_rows};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Runs check.mjs on the page at `path` (`mode`: "no-metrics" fails every
/// /metrics request); what the page drew. The screenshot's path is printed.
async fn open_page(server: &TestServer, path: &str, shot: &str, mode: &str) -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ui-{shot}.png"));
    let args = [
        server.base.clone(),
        path.to_string(),
        shot.display().to_string(),
        mode.to_string(),
    ];
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg("check.mjs")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "check.mjs: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("screenshot of {path}: {}", shot.display());
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(seen["errors"], json!([]), "the page logged errors");
    seen
}

fn node<'a>(snapshot: &'a Value, name: &str) -> &'a Value {
    snapshot["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no node `{name}` in {snapshot}"))
}

fn live(node: &Value) -> &str {
    node["live"].as_str().unwrap()
}

/// The calls per second a node's figures show.
fn calls_per_second(node: &Value) -> f64 {
    let live = live(node);
    live.split(" calls/s")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no calls/s in {live:?}"))
}

/// Requests sent to one model over and over until stopped, each answered
/// with the status expected.
struct Traffic {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Traffic {
    fn start(server: &TestServer, model: &str, body: Value, status: u16) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let (client, url, flag) = (
            server.client.clone(),
            server.url(&format!("/v2/models/{model}/infer")),
            stop.clone(),
        );
        let task = tokio::spawn(async move {
            while !flag.load(Ordering::Relaxed) {
                let answer = client.post(&url).json(&body).send().await.unwrap();
                assert_eq!(answer.status(), status);
                // Paced: the figures need traffic, not a flood.
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        });
        Traffic { stop, task }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
    }
}

fn digits_request(rows: usize) -> Value {
    let data: Vec<f32> = digits_test_rows()[..rows]
        .iter()
        .flat_map(|(p, _)| p.clone())
        .collect();
    json!({"inputs": [{"name": "pixels", "shape": [rows, 64], "datatype": "FP32", "data": data}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(aimass_browser),
    ignore = "needs AIMASS_CHROMIUM, Node and tests/ui/node_modules (bash .ci/run sets them up)"
)]
async fn the_page_draws_the_hierarchy_with_live_figures_and_failures() {
    let server = TestServer::start_config("configs/ui.toml", Limits::default()).await;
    // The page is served, and `--ui off` would not serve it.
    let (status, _) = server.get_json("/v2/ui/graph/nope").await;
    assert_eq!(status, 404);

    // Traffic to `digits` while the page is open.
    let traffic = Traffic::start(&server, "digits", digits_request(1), 200);
    let seen = open_page(&server, "/ui/models/digits", "digits", "").await;
    let second = &seen["second"];
    let kinds: Vec<(String, String)> = second["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().into(),
                n["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    for (name, kind) in [
        ("digits", "sequence"),
        ("features", "node"),
        ("student-or-teachers", "cascade"),
        ("student-head", "node"),
        ("teacher-heads", "ensemble"),
        ("teacher-0", "node"),
        ("teacher-1", "node"),
        ("teacher-2", "node"),
    ] {
        assert!(
            kinds.contains(&(name.into(), kind.into())),
            "{name} ({kind}) not in {kinds:?}"
        );
    }
    assert_eq!(kinds.len(), 8, "{kinds:?}");
    // Nesting, and the edges: the sequence's step, the cascade's escalation.
    assert_eq!(
        node(second, "teacher-0")["parent"],
        node(second, "teacher-heads")["id"]
    );
    assert_eq!(
        node(second, "student-head")["parent"],
        node(second, "student-or-teachers")["id"]
    );
    let edges: Vec<(String, String, String)> = second["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let name = |id: &Value| {
                let id = id.as_str().unwrap();
                node_named(second, id)
            };
            (
                name(&e["source"]),
                name(&e["target"]),
                e["label"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        edges.contains(&(
            "features".into(),
            "student-or-teachers".into(),
            String::new()
        )),
        "{edges:?}"
    );
    assert!(
        edges.contains(&(
            "student-head".into(),
            "teacher-heads".into(),
            "below 0.9".into()
        )),
        "{edges:?}"
    );
    assert_eq!(edges.len(), 2, "{edges:?}");
    // The figures move: calls per second on the features node, and the
    // cascade's share of rows per stage.
    assert!(calls_per_second(node(second, "features")) > 0.0, "{second}");
    let cascade = node(second, "student-or-teachers")["live"]
        .as_str()
        .unwrap();
    assert!(cascade.contains("stage 0 "), "{cascade}");
    // A hierarchy inside another one has its own calls and latency.
    assert!(
        calls_per_second(node(second, "student-or-teachers")) > 0.0,
        "{cascade}"
    );
    // Every model has a link of its own.
    assert!(
        second["links"]
            .as_array()
            .unwrap()
            .contains(&json!("/ui/models/digits")),
        "{second}"
    );
    // Each node plots its calls/s and p99 over the last minutes.
    let features = node(second, "features")["id"].as_str().unwrap();
    let plotted = &second["series"][features];
    let calls: Vec<f64> = plotted["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    assert!(calls.len() >= 3, "{plotted}");
    assert!(calls.iter().all(|&c| c > 0.0), "{plotted}");
    assert!(
        plotted["p99"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_f64().is_some()),
        "{plotted}"
    );
    assert_eq!(second["canvases"], json!(2 * kinds.len()), "{second}");

    // The overview: every model's traffic and errors, and the first
    // hierarchy drawn.
    let seen = open_page(&server, "/", "overview", "").await;
    let overview = &seen["second"];
    let rows = overview["overview"].as_array().expect("an overview table");
    let digits = rows.iter().find(|r| r["name"] == "digits").unwrap();
    assert!(digits["calls"].as_f64().unwrap() > 0.0, "{digits}");
    assert!(digits["p99"].as_f64().is_some(), "{digits}");
    assert_eq!(digits["failed"], 0, "{digits}");
    assert!(rows.iter().any(|r| r["name"] == "shaky"), "{overview}");
    assert!(
        overview["graphTitle"]
            .as_str()
            .unwrap()
            .ends_with("the first hierarchy"),
        "{overview}"
    );
    assert!(
        !overview["nodes"].as_array().unwrap().is_empty(),
        "{overview}"
    );
    traffic.stop().await;

    // A client's mistakes are told apart from failures: they do not mark
    // the model failing.
    let wrong = json!({"inputs": [{"name": "pixels", "shape": [1, 3], "datatype": "FP32",
        "data": [0.0, 0.0, 0.0]}]});
    let traffic = Traffic::start(&server, "digits", wrong, 400);
    let seen = open_page(&server, "/ui/models/digits", "digits-client-errors", "").await;
    traffic.stop().await;
    let digits = node(&seen["second"], "digits");
    assert!(
        live(digits).contains("client errors (last min): 400 "),
        "{digits}"
    );
    assert_eq!(digits["failing"], false, "{digits}");

    // A member that fails: its node is marked, with its errors by kind.
    let features = json!({"inputs": [{"name": "x", "shape": [1, 32], "datatype": "FP32",
        "data": vec![0.5f32; 32]}]});
    let traffic = Traffic::start(&server, "shaky", features, 200);
    let seen = open_page(&server, "/ui/models/shaky", "shaky", "").await;
    traffic.stop().await;
    let panicking = node(&seen["second"], "panicking");
    assert_eq!(panicking["failing"], true, "{panicking}");
    assert!(
        live(panicking).contains("plugin errors (last min): trap "),
        "{panicking}"
    );
    let shaky = node(&seen["second"], "shaky");
    assert!(
        live(shaky).contains("dropped (last min): panicking "),
        "{shaky}"
    );
    assert_eq!(node(&seen["second"], "teacher-0")["failing"], false);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(aimass_browser),
    ignore = "needs AIMASS_CHROMIUM, Node and tests/ui/node_modules (bash .ci/run sets them up)"
)]
async fn the_graph_is_drawn_before_any_figures_arrive() {
    let server = TestServer::start_config("configs/ui.toml", Limits::default()).await;
    let seen = open_page(
        &server,
        "/ui/models/digits",
        "digits-no-metrics",
        "no-metrics",
    )
    .await;
    let second = &seen["second"];
    assert_eq!(second["nodes"].as_array().unwrap().len(), 8, "{second}");
    assert_eq!(second["polls"], 0, "{second}");
    assert!(
        second["status"]
            .as_str()
            .unwrap()
            .starts_with("not updated"),
        "{second}"
    );
    server.stop().await.unwrap();
}

/// The name of the node with `id`.
fn node_named(snapshot: &Value, id: &str) -> String {
    snapshot["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id)
        .and_then(|n| n["name"].as_str())
        .unwrap_or_else(|| panic!("no node {id}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(aimass_browser),
    ignore = "needs AIMASS_CHROMIUM, Node and tests/ui/node_modules (bash .ci/run sets them up)"
)]
async fn names_that_are_markup_are_shown_as_text_and_never_run() {
    let server = TestServer::start_config("configs/ui_hostile.toml", Limits::default()).await;
    let model = "<img src=x onerror=\"window.__pwned=`model`\">";
    let (status, _) = server
        .get_json(&format!("/v2/ui/graph/{}", urlencoding(model)))
        .await;
    assert_eq!(status, 200);
    let path = format!("/ui/models/{}", urlencoding(model));
    let seen = open_page(&server, &path, "hostile", "").await;
    let second = &seen["second"];
    assert_eq!(
        second["pwned"],
        Value::Null,
        "script in a name ran: {second}"
    );
    assert_eq!(second["injected"], 0, "a name became markup: {second}");
    let texts: Vec<&str> = second["linkTexts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        texts.iter().any(|t| t.starts_with(model)),
        "the name is not shown as written: {texts:?}"
    );
    for name in [
        model,
        "<script>window.__pwned='node'</script>",
        "<img src=x onerror=\"window.__pwned=`member`\">",
    ] {
        node(second, name);
    }
    server.stop().await.unwrap();
}

/// `text` percent-encoded as a path segment.
fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
