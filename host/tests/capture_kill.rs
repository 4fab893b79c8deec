//! A server killed (SIGKILL) in the middle of capturing leaves only whole
//! files: each one is read in full by arrow-rs's reader and, when a Python
//! with pyarrow is at hand (`AIMASS_PYTHON`; CI has one), by pyarrow too.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// tests/configs/capture.toml with its placeholders filled in, in `dir`.
fn write_config(dir: &Path) -> PathBuf {
    let root = repository_root();
    let plugins = Path::new(aimass_test_artifacts::SCALER).parent().unwrap();
    let text = std::fs::read_to_string(root.join("tests/configs/capture.toml"))
        .unwrap()
        .replace("@PLUGINS@", &plugins.display().to_string())
        .replace(
            "@DIGITS@",
            &root.join("examples/digits").display().to_string(),
        )
        .replace("@CACHE@", &dir.join("cache").display().to_string());
    let path = dir.join("capture.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The rows of every Parquet file in `folder`, each read in full.
fn read_all(folder: &Path) -> (usize, usize) {
    let mut files = 0;
    let mut rows = 0;
    for entry in std::fs::read_dir(folder).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.ends_with(".parquet") {
            continue;
        }
        let file = std::fs::File::open(entry.path()).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap_or_else(|e| panic!("{name} is not a whole Parquet file: {e}"))
            .build()
            .unwrap();
        for batch in reader {
            rows += batch
                .unwrap_or_else(|e| panic!("{name} cannot be read: {e}"))
                .num_rows();
        }
        files += 1;
    }
    (files, rows)
}

#[test]
fn a_server_killed_mid_capture_leaves_only_whole_files() {
    let dir = std::env::temp_dir().join(format!("aimass-capture-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = write_config(&dir);
    let (mut child, address) = common::spawn_server(
        Command::new(env!("CARGO_BIN_EXE_aimass"))
            .arg("serve")
            .arg(&config)
            .args(["--listen", "127.0.0.1:0", "--grpc-listen", "off"]),
    );

    // Clients keep sending while the writer writes a file every 50 ms.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let folder = dir.join("capture/digits-killed/requests");
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let ready = format!("http://{address}/v2/health/ready");
        let started = Instant::now();
        while !client
            .get(&ready)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            assert!(started.elapsed() < Duration::from_secs(120), "not ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let body = serde_json::json!({"inputs": [{
            "name": "pixels", "shape": [8, 64], "datatype": "FP32",
            "data": (0..512).map(|i| (i % 17) as f32).collect::<Vec<_>>(),
        }]});
        let url = format!("http://{address}/v2/models/digits-killed/infer");
        for _ in 0..4 {
            let (client, body, url) = (client.clone(), body.clone(), url.clone());
            let (stop, answered) = (stop.clone(), answered.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if client
                        .post(&url)
                        .json(&body)
                        .send()
                        .await
                        .is_ok_and(|r| r.status() == 200)
                    {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        // Several files on disk, and requests still arriving: kill it.
        let started = Instant::now();
        while std::fs::read_dir(&folder).map_or(0, |d| d.count()) < 5 {
            assert!(started.elapsed() < Duration::from_secs(60), "no files");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(137)).await;
        child.kill().unwrap();
        stop.store(true, Ordering::Relaxed);
    });
    child.wait().unwrap();
    drop(runtime);

    let (files, rows) = read_all(&folder);
    assert!(files >= 5, "{files} files");
    let sent = answered.load(Ordering::Relaxed) as usize;
    assert!(rows > 0 && rows <= sent, "{rows} rows of {sent} answered");
    if let Ok(python) = std::env::var("AIMASS_PYTHON") {
        let script = repository_root().join("tests/capture/read_capture.py");
        let output = Command::new(python)
            .arg(&script)
            .arg(dir.join("capture/digits-killed"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "pyarrow: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let read: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(read["requests"].as_array().unwrap().len(), rows);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
