//! The `aimass` binary as a new user meets it: host names for `--listen`, a
//! bare config file name with `--build`, and log lines a client cannot
//! forge, in both log formats.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// A folder of its own under the temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("aimass-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server with no models, started from `dir` with `args`; its address and
/// everything it logs.
struct Served {
    child: Child,
    address: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Served {
    fn start(dir: &Path, args: &[&str]) -> Served {
        std::fs::write(dir.join("empty.toml"), "# serves nothing\n").unwrap();
        Served::start_config(dir, "empty.toml", args, Duration::from_secs(60))
    }

    /// Serves `config` from `dir`, waiting up to `bind` for its address
    /// (`--build` builds before it binds).
    fn start_config(dir: &Path, config: &str, args: &[&str], bind: Duration) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_aimass"))
            .arg("serve")
            .arg(config)
            .args(args)
            // A free port, not Triton's: tests run side by side.
            .args(["--grpc-listen", "127.0.0.1:0"])
            .env("AIMASS_LOG", "info")
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (found, address) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let kept = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some((_, rest)) = line.split_once("listening on http://") {
                    let address: String = rest
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '"')
                        .collect();
                    let _ = found.send(address);
                }
                kept.lock().unwrap().push(line);
            }
        });
        let address = address
            .recv_timeout(bind)
            .unwrap_or_else(|_| panic!("no address; log: {:?}", log.lock().unwrap()));
        Served {
            child,
            address,
            log,
        }
    }

    fn get(&self, path: &str) -> u16 {
        let started = Instant::now();
        loop {
            // The server answers 503 until its (empty) config is loaded.
            let status = http_get::blocking_get(&format!("http://{}{path}", self.address));
            if status != 503 || started.elapsed() > Duration::from_secs(30) {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server and returns its log.
    fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(100));
        self.log.lock().unwrap().clone()
    }
}

/// `aimass new` writes a folder that builds and serves as it says, with no
/// path to rewrite.
#[test]
fn a_new_plugin_folder_builds_and_serves_as_printed() {
    let dir = TempDir::new("new");
    let new = |name: &str| {
        Command::new(env!("CARGO_BIN_EXE_aimass"))
            .args(["new", name])
            .current_dir(&dir.0)
            .output()
            .unwrap()
    };
    let made = new("my-model");
    let said = String::from_utf8_lossy(&made.stdout);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    assert!(
        said.contains("cd my-model && aimass serve --build aimass.toml"),
        "{said}"
    );
    // Never over what is there.
    let again = new("my-model");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let bad = new("my model");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cannot name a plugin"));

    // The README's steps, from the new folder: build and serve, then the
    // request it wrote.
    let folder = dir.0.join("my-model");
    let server = Served::start_config(
        &folder,
        "aimass.toml",
        &["--build", "--listen", "127.0.0.1:0"],
        Duration::from_secs(900),
    );
    assert_eq!(server.get("/v2/health/ready"), 200);
    let request = std::fs::read_to_string(folder.join("request.json")).unwrap();
    let url = format!("http://{}/v2/models/my-model/infer", server.address);
    let (status, answer) = http_get::blocking_post(&url, &request);
    server.stop();
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains(r#""name":"label""#), "{answer}");
    assert!(answer.contains(r#""data":[0,1,1]"#), "{answer}");
}

mod http_get {
    /// A JSON POST over a plain socket: the status and the body.
    pub fn blocking_post(url: &str, body: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let rest = url.strip_prefix("http://").unwrap();
        let (host, path) = rest.split_at(rest.find('/').unwrap());
        let mut stream = std::net::TcpStream::connect(host).unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        (status, body.to_string())
    }

    /// A GET over a plain socket (the dev-dependency is async-only).
    pub fn blocking_get(url: &str) -> u16 {
        use std::io::{Read, Write};
        let rest = url.strip_prefix("http://").unwrap();
        let (host, path) = rest.split_at(rest.find('/').unwrap());
        let mut stream = std::net::TcpStream::connect(host).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
}

#[test]
fn listen_accepts_a_host_name() {
    let dir = TempDir::new("listen");
    let server = Served::start(&dir.0, &["--listen", "localhost:0"]);
    assert_eq!(server.get("/v2/health/live"), 200);
    let log = server.stop();
    assert!(
        log.iter()
            .any(|l| l.contains("listening on http://127.0.0.1:")
                || l.contains("listening on http://[::1]:")),
        "{log:?}"
    );
}

#[test]
fn a_newline_in_a_model_name_cannot_forge_a_log_line() {
    for format in ["human", "json"] {
        let dir = TempDir::new(&format!("forge-{format}"));
        let server = Served::start(&dir.0, &["--listen", "127.0.0.1:0", "--log-format", format]);
        assert_eq!(
            server.get("/v2/models/x%0Afake%20line%0D%1B%5B31m/ready"),
            404
        );
        let log = server.stop();
        assert!(
            !log.iter().any(|l| l.starts_with("fake line")),
            "{format}: a forged line: {log:?}"
        );
        let mentions: Vec<&String> = log.iter().filter(|l| l.contains("fake line")).collect();
        assert_eq!(mentions.len(), 1, "{format}: {log:?}");
        assert!(
            mentions[0].contains("x\\nfake line\\r"),
            "{format}: {log:?}"
        );
        assert!(!mentions[0].contains('\x1b'), "{format}: {log:?}");
        if format == "json" {
            for line in &log {
                let _: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
            }
        }
    }
}

#[test]
fn build_runs_in_the_folder_of_a_bare_config_file_name() {
    let dir = TempDir::new("build");
    std::fs::write(
        dir.0.join("aimass.toml"),
        "[plugins.p]\npath = \"p.wasm\"\nbuild = \"echo built > built.txt\"\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_aimass"))
        .args(["serve", "--build", "aimass.toml", "--listen", "127.0.0.1:0"])
        .args(["--grpc-listen", "127.0.0.1:0"])
        .current_dir(&dir.0)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        dir.0.join("built.txt").exists(),
        "the build command did not run in the config's folder: {stderr}"
    );
    // Built, but `p.wasm` is still missing: the error names it.
    assert!(!output.status.success());
    assert!(!stderr.contains("cannot run"), "{stderr}");
    assert!(stderr.contains("p.wasm"), "{stderr}");
}

/// Whether `text` holds anything a terminal acts on beyond ending a line.
fn acts_on_a_terminal(text: &str) -> Option<char> {
    text.chars()
        .find(|&c| c != '\n' && aimass::printable::needs_escape(c))
}

#[test]
fn inspect_shows_a_plugins_description_escaped() {
    let output = Command::new(env!("CARGO_BIN_EXE_aimass"))
        .args(["inspect", aimass_test_artifacts::FORGER])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}");
    assert_eq!(acts_on_a_terminal(&stdout), None, "{stdout:?}");
    // One `imports` line, the host's own; the forged one is inside `about`.
    let imports: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("imports"))
        .collect();
    assert_eq!(imports.len(), 1, "{stdout}");
    let about = stdout.lines().find(|l| l.starts_with("about")).unwrap();
    assert_eq!(
        about,
        "about      a harmless model\\nimports    (nothing else)\\x1b[1A\\x1b[2K\\x1b]0;owned\\x07\
         \\x1b]52;c;cm0gLXJmIH4=\\x07\\u0085fake line\\u2028another\\u202etxt.exe"
    );
}

#[test]
fn check_and_errors_show_hostile_names_escaped() {
    let dir = TempDir::new("hostile-names");
    let config = |forge: bool| {
        format!(
            "[plugins.forger]\npath = {:?}\n\n[nodes.\"a\\nok: 99 models, 0 graphs\\u001b]0;t\\u0007\"]\n\
             plugin = \"forger\"\nparams = {{ forge_names = {forge} }}\n",
            aimass_test_artifacts::FORGER
        )
    };
    std::fs::write(dir.0.join("names.toml"), config(false)).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_aimass"))
        .args(["check", "names.toml"])
        .current_dir(&dir.0)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}");
    assert_eq!(acts_on_a_terminal(&stdout), None, "{stdout:?}");
    let ok: Vec<&str> = stdout.lines().filter(|l| l.starts_with("ok:")).collect();
    assert_eq!(ok, ["ok: 1 models, 0 graphs"], "{stdout}");
    // Names that carry control characters are refused, and the refusal
    // shows them escaped.
    std::fs::write(dir.0.join("names.toml"), config(true)).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_aimass"))
        .args(["check", "names.toml"])
        .current_dir(&dir.0)
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!output.status.success(), "{stderr}");
    assert_eq!(acts_on_a_terminal(&stderr), None, "{stderr:?}");
    assert!(stderr.contains("`forger\\x1b[31m`"), "{stderr}");
}

/// `aimass schema | head`: a reader that stops early ends the output, not
/// the process with a "Broken pipe" panic.
#[test]
fn a_reader_that_stops_early_is_no_error() {
    for _ in 0..3 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_aimass"))
            .arg("schema")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The read end closed before the schema is written.
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
