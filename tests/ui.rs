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

/// Runs check.mjs on `model`; what the page drew.
async fn open_page(server: &TestServer, model: &str) -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ui-{model}.png"));
    let (base, model) = (server.base.clone(), model.to_string());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg("check.mjs")
            .args([&base, &model, &shot.display().to_string()])
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

/// The calls per second a node's figures show.
fn calls_per_second(node: &Value) -> f64 {
    let live = node["live"].as_str().unwrap();
    live.split(" calls/s")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no calls/s in {live:?}"))
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
    let stop = Arc::new(AtomicBool::new(false));
    let rows = digits_test_rows();
    let traffic = {
        let (client, url, stop) = (
            server.client.clone(),
            server.url("/v2/models/digits/infer"),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let body = json!({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32",
                    "data": rows[i % rows.len()].0}]});
                let answer = client.post(&url).json(&body).send().await.unwrap();
                assert_eq!(answer.status(), 200);
                i += 1;
            }
        })
    };
    let seen = open_page(&server, "digits").await;
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
    stop.store(true, Ordering::Relaxed);
    traffic.await.unwrap();

    // A member that fails: its node is marked, with its errors by kind.
    let features = json!({"inputs": [{"name": "x", "shape": [1, 32], "datatype": "FP32",
        "data": vec![0.5f32; 32]}]});
    for _ in 0..3 {
        let (status, answer) = server.post_json("/v2/models/shaky/infer", &features).await;
        assert_eq!(status, 200, "{answer}");
    }
    let seen = open_page(&server, "shaky").await;
    let panicking = node(&seen["second"], "panicking");
    assert_eq!(panicking["failing"], true, "{panicking}");
    assert!(
        panicking["live"]
            .as_str()
            .unwrap()
            .contains("errors: trap 3"),
        "{panicking}"
    );
    let shaky = node(&seen["second"], "shaky");
    assert!(
        shaky["live"]
            .as_str()
            .unwrap()
            .contains("dropped: panicking 3"),
        "{shaky}"
    );
    assert_eq!(node(&seen["second"], "teacher-0")["failing"], false);
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
    let seen = open_page(&server, model).await;
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
