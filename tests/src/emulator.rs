//! Helper servers the tests start themselves: the DynamoDB emulator (moto, single-threaded),
//! shared by every test of one test binary, and per-test ones such as the fault proxy.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;

use aws_config::BehaviorVersion;

use crate::WORKSPACE;

/// A helper server (Python) on a free port. It exits when this handle is dropped or this
/// process ends: its stdin is a pipe from us, and EOF stops it.
pub struct Server {
    pub endpoint: String,
    child: Child,
    _stdin: ChildStdin,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

static EMULATOR: OnceLock<Server> = OnceLock::new();

fn python() -> String {
    std::env::var("DYNAMODB_EMULATOR_PYTHON").unwrap_or_else(|_| format!("{WORKSPACE}/.venv/bin/python"))
}

/// Starts `script` (relative to the workspace) with `args` and waits for its READY line.
pub fn spawn(script: &str, args: &[&str]) -> Server {
    let python = python();
    let mut child = Command::new(&python)
        .arg(format!("{WORKSPACE}/{script}"))
        .args(["--port", "0", "--exit-on-stdin-eof"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {script} with {python} ({e}); run `make venv` or `make test`"));
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("READY line");
    let endpoint = line
        .trim()
        .strip_prefix("READY ")
        .unwrap_or_else(|| panic!("unexpected output of {script}: {line}"))
        .to_owned();
    let stdin = child.stdin.take().expect("piped stdin");
    Server { endpoint, child, _stdin: stdin }
}

pub fn endpoint() -> &'static str {
    &EMULATOR.get_or_init(|| spawn("infra/local/dynamodb_server.py", &[])).endpoint
}

/// A client for the emulator. One per test: SDK connections belong to the test's runtime.
pub async fn client() -> aws_sdk_dynamodb::Client {
    client_at(endpoint()).await
}

/// A client for any DynamoDB endpoint (the emulator, or a proxy in front of it).
pub async fn client_at(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let config = shared::clients::with_service_settings(aws_config::defaults(BehaviorVersion::latest()))
        .endpoint_url(endpoint)
        .region("us-east-1")
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("local", "local", None, None, "tests"))
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&config)
}

/// Posts JSON to a helper server's control route (e.g. the fault proxy's `/_proxy/config`)
/// and returns the response body. Plain HTTP/1.1 over a socket: enough for a control call.
pub fn control(endpoint: &str, method: &str, path: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let address = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connect to helper server");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send control request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read control response");
    assert!(response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"), "{response}");
    response.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned()
}
