//! Stock Python clients against the real server: `tritonclient[http]`,
//! `tritonclient[grpc]` and KServe's own clients (the `kserve` package).
//! Each script (tests/conformance/) checks health, metadata, repository,
//! config, statistics and inference as a user of that client would, with
//! the repository API behind an admin token where the client sends one.
//!
//! `AIMASS_PYTHON` names a Python with those packages and numpy (`.ci/run`
//! makes one); without it the tests are reported as ignored, unless
//! `AIMASS_REQUIRE_PYTHON` is set, as it is in CI (see `build.rs`).

use aimass::server::{AdminToken, Limits};
use aimass_tests::{TestServer, digits_dir};
use std::path::Path;

/// The admin token the guarded servers require.
const TOKEN: &str = "conformance-token";

/// Runs `tests/conformance/SCRIPT` with `args` and fails with its output
/// unless it says its checks passed.
async fn run_script(script: &str, args: Vec<String>) {
    let python = std::env::var("AIMASS_PYTHON")
        .expect("AIMASS_REQUIRE_PYTHON is set but AIMASS_PYTHON is not");
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("conformance")
        .join(script);
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&python)
            .arg(&script)
            .args(&args)
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
}

fn address(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

fn digits_csv() -> String {
    digits_dir().join("data/test.csv").display().to_string()
}

async fn guarded_server() -> TestServer {
    TestServer::start_guarded(
        "configs/serve.toml",
        Limits::default(),
        AdminToken::new(TOKEN).unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(aimass_python),
    ignore = "needs AIMASS_PYTHON, a Python with tritonclient[http] (bash .ci/run makes one)"
)]
async fn tritonclient_conformance() {
    let server = guarded_server().await;
    let args = vec![address(&server.base), digits_csv(), TOKEN.into()];
    run_script("tritonclient_conformance.py", args).await;
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
    let server = guarded_server().await;
    let args = vec![
        address(&server.grpc),
        address(&server.base),
        digits_csv(),
        TOKEN.into(),
    ];
    run_script("tritonclient_grpc_conformance.py", args).await;
    server.stop().await.unwrap();
}

/// KServe's own clients: `InferenceRESTClient` over v2 REST (it parses the
/// health bodies) and `InferenceGRPCClient`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(aimass_python),
    ignore = "needs AIMASS_PYTHON, a Python with kserve (bash .ci/run makes one)"
)]
async fn kserve_clients_conformance() {
    let server = TestServer::start(Limits::default()).await;
    let args = vec![address(&server.base), address(&server.grpc), digits_csv()];
    run_script("kserve_conformance.py", args).await;
    server.stop().await.unwrap();
}
