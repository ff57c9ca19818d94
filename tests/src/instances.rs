//! Function instances as real OS processes (the `functions-process` binary), all on one table
//! of one store, and blocking HTTP clients that spread requests across them.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};

use serde_json::Value;

/// K processes, each serving every function. They exit when this is dropped (their stdin
/// closes) and are killed and reaped besides.
pub struct Instances {
    pub origins: Vec<String>,
    children: Vec<(Child, ChildStdin)>,
}

impl Instances {
    /// Starts `count` processes of `binary` (pass `env!("CARGO_BIN_EXE_functions-process")`)
    /// against `table` at `store`, and waits for each one's READY line.
    pub fn start(binary: &str, count: usize, store: &str, table: &str) -> Self {
        let mut children = Vec::with_capacity(count);
        for _ in 0..count {
            let mut child = Command::new(binary)
                .args(["--store", store, "--table", table])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
            let stdin = child.stdin.take().expect("piped stdin");
            children.push((child, stdin));
        }
        let origins = children
            .iter_mut()
            .map(|(child, _)| {
                let mut line = String::new();
                BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line).expect("READY line");
                line.trim().strip_prefix("READY ").unwrap_or_else(|| panic!("unexpected output: {line:?}")).to_owned()
            })
            .collect();
        Self { origins, children }
    }
}

impl Drop for Instances {
    fn drop(&mut self) {
        for (mut child, stdin) in self.children.drain(..) {
            drop(stdin);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One HTTP answer: status, the `idempotent-replayed` marker, and the JSON body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub replayed: bool,
    pub body: Value,
}

/// A blocking JSON POST to `origin` (one connection per request).
pub fn post(origin: &str, path: &str, headers: &[(String, String)], body: &Value) -> Answer {
    use std::io::{Read, Write};
    let address = origin.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connect to a functions process");
    let body = body.to_string();
    let mut request = format!("POST {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let replayed = head.lines().any(|l| l.to_ascii_lowercase().replace(' ', "") == "idempotent-replayed:true");
    let body =
        if body.is_empty() { Value::Null } else { serde_json::from_str(body).unwrap_or(Value::String(body.into())) };
    Answer { status, replayed, body }
}

/// Runs `clients` OS threads at once (released together by a barrier), client `i` running
/// `work(i)`; returns what each returned, in client order.
pub fn in_parallel<T: Send>(clients: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let barrier = std::sync::Barrier::new(clients);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|i| {
                let (barrier, work) = (&barrier, &work);
                scope.spawn(move || {
                    barrier.wait();
                    work(i)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("client thread")).collect()
    })
}

/// How many answers had each status, e.g. `{200: 100, 402: 100}`.
pub fn statuses<'a>(answers: impl IntoIterator<Item = &'a Answer>) -> std::collections::BTreeMap<u16, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for answer in answers {
        *counts.entry(answer.status).or_insert(0) += 1;
    }
    counts
}
