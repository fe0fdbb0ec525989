//! Shared helpers for the integration tests: fixture paths, devices, tensor comparison.
//! They live in `crates/diffclip-testkit` (shared with the crates' own tests); its backend
//! features follow this package's `flex`, `ndarray` and `wgpu`.
#![allow(dead_code, unused_imports)]

pub use diffclip_testkit::*;

use std::path::{Path, PathBuf};

/// The example binary `name`, built by cargo before the integration tests run.
pub fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/<test> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().unwrap().parent().unwrap().join("examples").join(name);
    assert!(p.exists(), "example binary {} not built (cargo build --release --example {name})", p.display());
    p
}

/// A fresh, empty temporary folder `diffclip-<test>-<name>-XXXXXX` under cargo's `target/tmp`,
/// removed when dropped.
pub fn tmpdir(test: &str, name: &str) -> TestDir {
    TestDir::new_in(Path::new(env!("CARGO_TARGET_TMPDIR")), &format!("{test}-{name}"))
}

/// Every row of every shard in `dir`: (its `paths` entry, its values).
pub fn shard_rows(dir: &Path, tensor: &str) -> Vec<(String, Vec<f32>)> {
    let mut shards: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "safetensors")).collect();
    shards.sort();
    let mut rows = Vec::new();
    for shard in shards {
        let bytes = std::fs::read(&shard).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let paths: Vec<String> = serde_json::from_str(&meta.metadata().as_ref().unwrap()["paths"]).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let view = st.tensor(tensor).unwrap();
        let values: Vec<f32> = view.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        let cols = view.shape()[1];
        assert_eq!(view.shape()[0], paths.len(), "{}: one path per row", shard.display());
        rows.extend(paths.into_iter().zip(values.chunks(cols).map(<[f32]>::to_vec)));
    }
    rows
}

/// A child's standard output as JSON lines read on their own thread: [`Self::next`] waits at
/// most 300 s for one, so a program that waited for the end of its input would fail the test
/// instead of hanging it.
pub struct JsonLines(std::sync::mpsc::Receiver<String>);

impl JsonLines {
    /// Starts reading `out` (e.g. `child.stdout.take().unwrap()`).
    pub fn new(out: impl std::io::Read + Send + 'static) -> Self {
        use std::io::BufRead;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                if tx.send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
        Self(rx)
    }

    /// The next line, parsed; panics when none comes within 300 s or the output ended.
    pub fn next(&self) -> serde_json::Value {
        let line = self.0.recv_timeout(std::time::Duration::from_secs(300)).expect("an answer while standard input is open");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"))
    }
}

/// A program started with `--listen 127.0.0.1:0` (`search`, `classify`), killed when the test
/// ends, however it ends.
pub struct Server(std::process::Child, std::net::SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<String>>>, std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Server {
    /// Starts `program` on a free port and waits for its "listening on" line.
    pub fn start(mut program: std::process::Command) -> Self {
        use std::process::Stdio;
        let mut child = program.args(["--listen", "127.0.0.1:0"]).stderr(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stalled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut server = Self(child, ([127, 0, 0, 1], 0).into(), log.clone(), stalled.clone()); // killed if it never listens
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            // Read to the end, so the server never blocks on stderr (unless stalled).
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                log.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
                while stalled.load(std::sync::atomic::Ordering::SeqCst) {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            }
        });
        let address = |line: &str| line.strip_prefix("listening on http://").and_then(|s| s.split(' ').next()).and_then(|a| a.parse().ok());
        let mut said = Vec::new();
        loop {
            let line = rx.recv_timeout(std::time::Duration::from_secs(300)).unwrap_or_else(|e| panic!("the program did not say where it listens ({e}); it said {said:?}"));
            if let Some(addr) = address(&line) {
                server.1 = addr;
                return server;
            }
            said.push(line);
        }
    }

    /// What it has written on stderr so far.
    pub fn log(&self) -> Vec<String> {
        self.2.lock().unwrap().clone()
    }

    /// Stops reading its stderr (after at most one more line), as a stalled log reader would.
    pub fn stall_stderr(&self) {
        self.3.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Where it listens.
    pub fn address(&self) -> std::net::SocketAddr {
        self.1
    }

    /// Sends it `SIGTERM` and waits at most 30 s for it to end: its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let killed = std::process::Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status().unwrap();
        assert!(killed.success());
        for _ in 0..300 {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("still running 30 s after SIGTERM; it said {:?}", self.log());
    }

    /// `METHOD target` with `body`, to host `localhost`: the status and the JSON answer.
    pub fn call(&self, method: &str, target: &str, body: &[u8]) -> (u16, serde_json::Value) {
        self.call_as("localhost", method, target, body)
    }

    /// [`Self::call`] naming `host` in the `Host` header; waits at most 300 s for the answer.
    pub fn call_as(&self, host: &str, method: &str, target: &str, body: &[u8]) -> (u16, serde_json::Value) {
        self.call_with(host, "", method, target, body)
    }

    /// [`Self::call_as`] with `extra` header lines (each ending in `\r\n`).
    pub fn call_with(&self, host: &str, extra: &str, method: &str, target: &str, body: &[u8]) -> (u16, serde_json::Value) {
        let (head, json) = self.exchange(host, extra, method, target, body);
        (head.split(' ').nth(1).unwrap().parse().unwrap(), serde_json::from_str(&json).unwrap_or_else(|e| panic!("{head}\r\n\r\n{json:?}: {e}")))
    }

    /// The status line and headers of the answer to `METHOD target` with `body`.
    pub fn call_head(&self, method: &str, target: &str, body: &[u8]) -> String {
        self.exchange("localhost", "", method, target, body).0
    }

    /// One request on a connection of its own: the answer's head and body.
    fn exchange(&self, host: &str, extra: &str, method: &str, target: &str, body: &[u8]) -> (String, String) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.1).unwrap();
        stream.set_read_timeout(Some(std::time::Duration::from_secs(300))).unwrap();
        write!(stream, "{method} {target} HTTP/1.1\r\nHost: {host}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()).unwrap();
        stream.write_all(body).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let (head, json) = answer.split_once("\r\n\r\n").unwrap_or_else(|| panic!("{answer:?}"));
        (head.to_string(), json.to_string())
    }
}
