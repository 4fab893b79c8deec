//! Helpers shared by the integration tests.

use aimass::runtime::{
    EngineOptions, GrantedGraphs, Instance, InstanceLimits, NnState, Plugin, Runtime,
};
use aimass::tensor::Tensor;
use std::path::Path;

/// A runtime sized for tests.
pub fn runtime() -> Runtime {
    Runtime::new(EngineOptions {
        max_instances: 16,
        ..EngineOptions::default()
    })
    .expect("engine")
}

/// Loads the component at `path` under `name`.
pub fn load(runtime: &Runtime, name: &str, path: &str) -> Plugin {
    runtime
        .load(name, Path::new(path), None)
        .unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

/// A wasi-nn context that grants no graphs at all.
pub fn no_graphs() -> NnState {
    NnState::new(&GrantedGraphs::default())
}

/// An instance of `plugin` for node `node` with default limits and no graphs.
pub async fn instance(runtime: &Runtime, plugin: &Plugin, node: &str) -> Instance {
    runtime
        .instantiate(plugin, node, no_graphs(), InstanceLimits::default())
        .await
        .unwrap_or_else(|e| panic!("instantiating {node}: {e}"))
}

/// An FP32 host tensor.
pub fn f32_tensor(shape: &[u32], values: &[f32]) -> Tensor {
    Tensor::from_f32(shape.to_vec(), values).expect("values fill the shape")
}

/// The values of an FP32 host tensor.
pub fn f32_values(tensor: &Tensor) -> Vec<f32> {
    tensor.f32s().expect("an FP32 tensor")
}

/// The values of an INT64 host tensor.
pub fn i64_values(tensor: &Tensor) -> Vec<i64> {
    tensor.i64s().expect("an INT64 tensor")
}

/// An INT64 host tensor.
pub fn i64_tensor(shape: &[u32], values: &[i64]) -> Tensor {
    Tensor::from_i64(shape.to_vec(), values).expect("values fill the shape")
}

/// The digits example's folder.
pub fn digits_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/digits")
}

/// The digits test split: 64 raw pixel values (0-16) and the label per row.
pub fn digits_test_rows() -> Vec<(Vec<f32>, i64)> {
    digits_rows("test")
}

/// A split of the digits data (`test` or `train`), as [`digits_test_rows`].
pub fn digits_rows(split: &str) -> Vec<(Vec<f32>, i64)> {
    let path = digits_dir().join(format!("data/{split}.csv"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .skip(1)
        .map(|line| {
            let mut fields: Vec<&str> = line.split(',').collect();
            let label = fields.pop().expect("label").parse().expect("label");
            let pixels = fields.iter().map(|f| f.parse().expect("pixel")).collect();
            (pixels, label)
        })
        .collect()
}

/// Runs `graph` natively (no plugin) on one input tensor.
pub fn compute(
    graph: &wasmtime_wasi_nn::Graph,
    input: &str,
    tensor: Tensor,
) -> Result<Vec<(String, Tensor)>, String> {
    let tensor = tensor.into_backend().map_err(|e| e.to_string())?;
    compute_backend(graph, input, tensor)?
        .into_iter()
        .map(|(name, t)| Ok((name, Tensor::from_backend(t).map_err(|e| e.to_string())?)))
        .collect()
}

/// Runs `graph` natively on a backend tensor as given, even a malformed one.
pub fn compute_backend(
    graph: &wasmtime_wasi_nn::Graph,
    input: &str,
    tensor: wasmtime_wasi_nn::Tensor,
) -> Result<Vec<(String, wasmtime_wasi_nn::Tensor)>, String> {
    let mut context = graph.init_execution_context().map_err(|e| e.to_string())?;
    let outputs = context
        .compute_with_io(vec![wasmtime_wasi_nn::backend::NamedTensor {
            name: input.to_string(),
            tensor,
        }])
        .map_err(|e| e.to_string())?;
    Ok(outputs.into_iter().map(|t| (t.name, t.tensor)).collect())
}

/// Starts the config at `relative` (from this crate's folder), with
/// `@PLUGINS@` standing for the folder the test build put the plugins in.
pub async fn open_config(
    relative: &str,
) -> Result<aimass::repository::Repository, aimass::config::ConfigErrors> {
    let plugins = Path::new(aimass_test_artifacts::SCALER)
        .parent()
        .expect("plugin folder")
        .display()
        .to_string();
    // Tests run in this crate's folder, so messages name `relative` as is.
    // The example configs point at the default cargo output folder instead.
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(relative))
        .expect("config")
        .replace("@PLUGINS@", &plugins)
        .replace("../../target/wasm32-wasip2/release", &plugins);
    let file = aimass::config::ConfigFile::parse(Path::new(relative), text)?;
    aimass::repository::Repository::start(file).await
}

/// PaddleOCR's models as `examples/ocr/fetch_models.py` unpacks them:
/// `AIMASS_OCR_MODELS`, else the example's own folder.
pub fn ocr_models_dir() -> std::path::PathBuf {
    match std::env::var_os("AIMASS_OCR_MODELS") {
        Some(dir) => dir.into(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ocr/models"),
    }
}

/// A fresh folder under the system's temp dir, for one test.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "aimass-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// `tests/configs/serve.toml`, with its placeholders filled in, written to
/// a folder of its own (so a test may edit it and reload).
pub fn write_serve_config() -> std::path::PathBuf {
    write_config("configs/serve.toml")
}

/// The config at `relative` (from this crate's folder) with `@PLUGINS@`,
/// `@DIGITS@` and `@CACHE@` filled in and paths relative to `tests/configs`
/// made absolute, written to a folder of its own.
pub fn write_config(relative: &str) -> std::path::PathBuf {
    let plugins = Path::new(aimass_test_artifacts::SCALER)
        .parent()
        .expect("plugin folder");
    let dir = temp_dir("serve");
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(relative))
        .unwrap_or_else(|e| panic!("{relative}: {e}"))
        .replace("@PLUGINS@", &plugins.display().to_string())
        .replace("@DIGITS@", &digits_dir().display().to_string())
        .replace("@CACHE@", &dir.join("cache").display().to_string())
        .replace("@OCR@", &ocr_models_dir().display().to_string())
        // Paths relative to tests/configs, for configs that are also
        // opened in place (tests/configs/hierarchies.toml).
        .replace(
            "\"../../examples/digits/",
            &format!("\"{}/", digits_dir().display()),
        )
        .replace(
            "\"../models/",
            &format!("\"{}/models/", env!("CARGO_MANIFEST_DIR")),
        );
    let name = Path::new(relative).file_name().expect("a file name");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

/// A real server, in this process, on `127.0.0.1:0`.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The gRPC endpoint, `http://127.0.0.1:PORT`.
    pub grpc: String,
    /// The config file it serves (a copy the test may edit).
    pub config: std::path::PathBuf,
    /// A client for it.
    pub client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), aimass::server::ServeError>>,
}

impl TestServer {
    /// Serves `tests/configs/serve.toml` with `limits`, once it is ready.
    pub async fn start(limits: aimass::server::Limits) -> TestServer {
        Self::start_config("configs/serve.toml", limits).await
    }

    /// Serves the config at `relative` (see [`write_config`]) with `limits`,
    /// once it is ready.
    pub async fn start_config(relative: &str, limits: aimass::server::Limits) -> TestServer {
        Self::start_guarded(relative, limits, aimass::server::AdminToken::none()).await
    }

    /// Serves the config at `relative` with `limits`, its management calls
    /// guarded by `admin_token`, once it is ready.
    pub async fn start_guarded(
        relative: &str,
        limits: aimass::server::Limits,
        admin_token: aimass::server::AdminToken,
    ) -> TestServer {
        Self::start_with(relative, limits, admin_token, None).await
    }

    /// Serves the config at `relative` polling it (and its files) every
    /// `every` for changes, as `aimass serve --watch` does.
    pub async fn start_watching(relative: &str, every: std::time::Duration) -> TestServer {
        let limits = aimass::server::Limits::default();
        let token = aimass::server::AdminToken::none();
        Self::start_with(relative, limits, token, Some(every)).await
    }

    /// Serves the config file at `config` (one [`write_config`] wrote and
    /// the test edited), once it is ready.
    pub async fn start_file(config: std::path::PathBuf) -> TestServer {
        let limits = aimass::server::Limits::default();
        let token = aimass::server::AdminToken::none();
        Self::serve(config, limits, token, None).await
    }

    async fn start_with(
        relative: &str,
        limits: aimass::server::Limits,
        admin_token: aimass::server::AdminToken,
        watch: Option<std::time::Duration>,
    ) -> TestServer {
        Self::serve(write_config(relative), limits, admin_token, watch).await
    }

    async fn serve(
        config: std::path::PathBuf,
        limits: aimass::server::Limits,
        admin_token: aimass::server::AdminToken,
        watch: Option<std::time::Duration>,
    ) -> TestServer {
        let server = aimass::server::Server::bind(aimass::server::ServeOptions {
            config: config.clone(),
            listen: "127.0.0.1:0".parse().expect("address"),
            limits,
            admin_token,
            watch,
            grpc_listen: Some("127.0.0.1:0".parse().expect("address")),
            ui: true,
        })
        .await
        .expect("bind");
        let base = format!("http://{}", server.local_addr().expect("address"));
        let grpc = format!("http://{}", server.grpc_addr().expect("a gRPC address"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::new();
        let started = std::time::Instant::now();
        loop {
            let ready = client.get(format!("{base}/v2/health/ready")).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                break;
            }
            assert!(
                !task.is_finished(),
                "the server stopped while loading: {:?}",
                task.await
            );
            assert!(
                started.elapsed() < std::time::Duration::from_secs(120),
                "not ready after 120 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        TestServer {
            base,
            grpc,
            config,
            client,
            stop: Some(stop),
            task,
        }
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs `body` as JSON to `path`; the status and the parsed body
    /// (`null` when empty).
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let response = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("request");
        read_json(response).await
    }

    /// GETs `path`; the status and the parsed body (`null` when empty).
    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        read_json(response).await
    }

    /// The text of `/metrics`.
    /// POSTs a binary-extension body to `model`'s infer endpoint: `header`
    /// as the JSON part, then `tail`; the status, the answer's JSON part and
    /// its binary part.
    pub async fn post_binary(
        &self,
        model: &str,
        header: &serde_json::Value,
        tail: &[u8],
    ) -> (u16, serde_json::Value, Vec<u8>) {
        let json = serde_json::to_vec(header).expect("JSON");
        let mut body = json.clone();
        body.extend_from_slice(tail);
        let response = self
            .client
            .post(self.url(&format!("/v2/models/{model}/infer")))
            .header("Inference-Header-Content-Length", json.len().to_string())
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .expect("POST infer");
        let status = response.status().as_u16();
        let length: Option<usize> = response
            .headers()
            .get("inference-header-content-length")
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let bytes = response.bytes().await.expect("a body").to_vec();
        let split = length.unwrap_or(bytes.len()).min(bytes.len());
        let answer = serde_json::from_slice(&bytes[..split]).unwrap_or(serde_json::Value::Null);
        (status, answer, bytes[split..].to_vec())
    }

    pub async fn metrics_text(&self) -> String {
        let response = self.client.get(self.url("/metrics")).send().await;
        response
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// The value of the metric line that starts with `series` (the name
    /// and its labels, e.g. `m{a="b"}`); 0 when there is none.
    pub async fn metric(&self, series: &str) -> f64 {
        self.metrics_text()
            .await
            .lines()
            .find_map(|line| line.strip_prefix(series))
            .and_then(|rest| rest.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// Signals shutdown, waits for the server to finish, and removes the
    /// folder its config and compile cache were written to.
    pub async fn stop(mut self) -> Result<(), aimass::server::ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = self.task.await.expect("server task");
        if let Some(dir) = self.config.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
        result
    }
}

/// A response's status and JSON body (`null` when empty).
pub async fn read_json(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
    };
    (status, body)
}

/// A request to the `chaos` node of `tests/configs/serve.toml`: `action`
/// says what it does (0 echo, 1 loop, 2 hog memory, 3 panic).
pub fn chaos_request(action: i64) -> serde_json::Value {
    serde_json::json!({"inputs": [
        {"name": "action", "shape": [1], "datatype": "INT64", "data": [action]},
        {"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]},
    ]})
}

/// Rewrites a scaler node's `params = { scale = FROM, features = 4 }` in
/// `config` to scale `to` (the reload tests' visible change).
pub fn set_scale(config: &std::path::Path, from: f64, to: f64) {
    let text = std::fs::read_to_string(config).unwrap();
    let old = format!("params = {{ scale = {from:?}, features = 4 }}");
    assert!(text.contains(&old), "{old} not in the config");
    let new = format!("params = {{ scale = {to:?}, features = 4 }}");
    std::fs::write(config, text.replacen(&old, &new, 1)).unwrap();
}

/// The output `name` of an inference answer.
pub fn output<'a>(answer: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    answer["outputs"]
        .as_array()
        .unwrap_or_else(|| panic!("no outputs: {answer}"))
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no output {name}: {answer}"))
}

/// Runs `python` with `args` off the async workers (a server of the test
/// may run on them), failing with its output unless it exits 0; its stdout.
pub async fn run_python(python: String, args: Vec<std::ffi::OsString>) -> String {
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&python)
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {python}: {e}"))
    })
    .await
    .expect("the python task");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
