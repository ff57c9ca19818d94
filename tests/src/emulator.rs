//! Helper servers the tests start themselves: the DynamoDB emulator (moto, single-threaded)
//! behind the fault proxy with conflicts modeled, shared by every test of one test binary, and
//! per-test ones such as a fault proxy with faults of the test's choosing.

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
static STORE: OnceLock<Server> = OnceLock::new();

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

/// The emulator itself, shared by the tests of one binary. Only for what puts its own proxy in
/// front of it (`proxy`); everything else uses `endpoint`.
pub fn emulator_endpoint() -> &'static str {
    &EMULATOR.get_or_init(|| spawn("infra/local/dynamodb_server.py", &[])).endpoint
}

/// The store every test talks to: the fault proxy in front of the emulator with conflicts
/// modeled as DynamoDB raises them (`TransactionConflict` between overlapping transactions,
/// `TransactionConflictException` for a single-item write on an item a transaction holds) and
/// no other fault. Shared by the tests of one binary.
pub fn endpoint() -> &'static str {
    &STORE.get_or_init(|| proxy(&[])).endpoint
}

/// A fault proxy of the test's own in front of the emulator, conflicts modeled, `args` added
/// (rates, seed). `DYNAMODB_MODEL_CONFLICTS=0` in the environment turns the model off (to
/// compare; `make test` never sets it).
pub fn proxy(args: &[&str]) -> Server {
    let model = if std::env::var("DYNAMODB_MODEL_CONFLICTS").is_ok_and(|v| v == "0") {
        "--no-model-conflicts"
    } else {
        "--model-conflicts"
    };
    let mut all = vec!["--upstream", emulator_endpoint(), model];
    all.extend_from_slice(args);
    spawn("tests/faults/dynamodb_proxy.py", &all)
}

/// A client for the store (through the shared proxy). One per test: SDK connections belong
/// to the test's runtime.
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
    shared::clients::dynamodb_from(&config)
}

/// A plain HTTP/1.1 call to a helper server (control routes, the Stripe stand-in's API):
/// returns the status and the body. Enough for tests; no client crate needed.
pub fn call(endpoint: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let address = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connect to helper server");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// Posts JSON to a helper server's control route (e.g. the fault proxy's `/_proxy/config`)
/// and returns the response body, asserting it answered 200.
pub fn control(endpoint: &str, method: &str, path: &str, body: &str) -> String {
    let (status, response) = call(endpoint, method, path, &[("Content-Type", "application/json")], body);
    assert_eq!(status, 200, "{method} {path}: {response}");
    response
}

static STRIPE: OnceLock<Server> = OnceLock::new();

/// The Stripe stand-in shared by the tests of one binary (tests that inject Stripe faults
/// start their own with `spawn`). Failing refunds fail only when a test says so, so the
/// lifecycle tests see each step.
pub fn stripe_endpoint() -> &'static str {
    &STRIPE.get_or_init(|| spawn("tests/stripe_standin/server.py", &["--refund-fail-after", "-1"])).endpoint
}
