//! Starting the real `aimass` binary as a server, shared by the tests that
//! need its process of their own.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Spawns `serve` (its arguments, folder and environment already set) and
/// waits until it logs the address it listens on: the child and that
/// `HOST:PORT`.
pub fn spawn_server(serve: &mut Command) -> (Child, String) {
    let mut child = serve
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (found, address) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some((_, addr)) = line.split_once("listening on http://") {
                let addr: String = addr
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '"')
                    .collect();
                let _ = found.send(addr);
            }
        }
    });
    let address = address.recv_timeout(Duration::from_secs(120)).unwrap();
    (child, address)
}
