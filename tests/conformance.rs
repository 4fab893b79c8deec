//! The stock Python `tritonclient[http]` (and `[grpc]`, and KServe's own
//! clients) against the real server: health,
//! metadata, repository, config, statistics and inference with binary and
//! JSON tensors (tests/conformance/tritonclient_conformance.py), with the
//! repository API behind an admin token.
//!
//! `AIMASS_PYTHON` names a Python with `tritonclient[http]` and numpy
//! (`.ci/run` makes one); without it the test is reported as ignored,
//! unless `AIMASS_REQUIRE_PYTHON` is set, as it is in CI (see `build.rs`).

use aimass::server::{AdminToken, Limits};
use aimass_tests::{TestServer, digits_dir};
use std::path::Path;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(aimass_python),
    ignore = "needs AIMASS_PYTHON, a Python with tritonclient[http] (bash .ci/run makes one)"
)]
async fn tritonclient_conformance() {
    let python = std::env::var("AIMASS_PYTHON")
        .expect("AIMASS_REQUIRE_PYTHON is set but AIMASS_PYTHON is not");
    // The repository API is guarded: tritonclient sends the token as a header.
    let token = "conformance-token";
    let server = TestServer::start_guarded(
        "configs/serve.toml",
        Limits::default(),
        AdminToken::new(token).unwrap(),
    )
    .await;
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/tritonclient_conformance.py");
    let host = server.base.trim_start_matches("http://").to_string();
    let csv = digits_dir().join("data/test.csv");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&python)
            .arg(&script)
            .arg(&host)
            .arg(&csv)
            .arg(token)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {python}: {e}"))
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "conformance failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("checks passed"), "{stdout}");
    eprintln!("{stdout}");
    server.stop().await.unwrap();
}

/// The same with `tritonclient[grpc]` over the gRPC listener, and the same
/// rows over REST compared bit for bit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(aimass_python),
    ignore = "needs AIMASS_PYTHON, a Python with tritonclient[grpc] (bash .ci/run makes one)"
)]
async fn tritonclient_grpc_conformance() {
    let python = std::env::var("AIMASS_PYTHON")
        .expect("AIMASS_REQUIRE_PYTHON is set but AIMASS_PYTHON is not");
    let token = "conformance-token";
    let server = TestServer::start_guarded(
        "configs/serve.toml",
        Limits::default(),
        AdminToken::new(token).unwrap(),
    )
    .await;
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/tritonclient_grpc_conformance.py");
    let grpc = server.grpc.trim_start_matches("http://").to_string();
    let rest = server.base.trim_start_matches("http://").to_string();
    let csv = digits_dir().join("data/test.csv");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&python)
            .arg(&script)
            .arg(&grpc)
            .arg(&rest)
            .arg(&csv)
            .arg(token)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {python}: {e}"))
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "gRPC conformance failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("checks passed"), "{stdout}");
    eprintln!("{stdout}");
    server.stop().await.unwrap();
}

/// KServe's own clients (the `kserve` package): `InferenceRESTClient` over
/// v2 REST (it parses the health bodies) and `InferenceGRPCClient`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(aimass_python),
    ignore = "needs AIMASS_PYTHON, a Python with kserve (bash .ci/run makes one)"
)]
async fn kserve_clients_conformance() {
    let python = std::env::var("AIMASS_PYTHON")
        .expect("AIMASS_REQUIRE_PYTHON is set but AIMASS_PYTHON is not");
    let server = TestServer::start(Limits::default()).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/kserve_conformance.py");
    let rest = server.base.trim_start_matches("http://").to_string();
    let grpc = server.grpc.trim_start_matches("http://").to_string();
    let csv = digits_dir().join("data/test.csv");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&python)
            .arg(&script)
            .arg(&rest)
            .arg(&grpc)
            .arg(&csv)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {python}: {e}"))
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "kserve conformance failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("checks passed"), "{stdout}");
    eprintln!("{stdout}");
    server.stop().await.unwrap();
}
