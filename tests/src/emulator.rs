//! The DynamoDB emulator (moto, single-threaded) shared by every test of one test binary.
//! It is started on a free port on first use and exits when this process exits (its stdin
//! is a pipe from us; EOF stops it).

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;

use aws_config::BehaviorVersion;

use crate::WORKSPACE;

struct Emulator {
    endpoint: String,
    _child: Child,
    _stdin: ChildStdin,
}

static EMULATOR: OnceLock<Emulator> = OnceLock::new();

fn python() -> String {
    std::env::var("DYNAMODB_EMULATOR_PYTHON").unwrap_or_else(|_| format!("{WORKSPACE}/.venv/bin/python"))
}

fn start() -> Emulator {
    let python = python();
    let mut child = Command::new(&python)
        .arg(format!("{WORKSPACE}/infra/local/dynamodb_server.py"))
        .args(["--port", "0", "--exit-on-stdin-eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start the DynamoDB emulator with {python} ({e}); run `make venv` or `make test`")
        });
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("emulator READY line");
    let endpoint =
        line.trim().strip_prefix("READY ").unwrap_or_else(|| panic!("unexpected emulator output: {line}")).to_owned();
    let stdin = child.stdin.take().expect("piped stdin");
    Emulator { endpoint, _child: child, _stdin: stdin }
}

pub fn endpoint() -> &'static str {
    &EMULATOR.get_or_init(start).endpoint
}

/// A client for the emulator. One per test: SDK connections belong to the test's runtime.
pub async fn client() -> aws_sdk_dynamodb::Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region("us-east-1")
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("local", "local", None, None, "tests"))
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&config)
}
