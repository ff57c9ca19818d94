//! Every function of one `TestApp` on one real `127.0.0.1:0` listener, for clients that
//! speak HTTP themselves (Quest's JS SDK under `node --test`).
//!
//! Requests go to functions through the same path → function table as `cargo lambda watch`
//! and API Gateway (`[workspace.metadata.lambda.watch.router]`), not through one merged
//! router: every function router has its own 404/405 fallback, and axum's `Router::merge`
//! panics on two fallbacks. So a route a function serves but the table does not name is
//! unreachable here, as it would be when deployed.
//!
//! HTTP/1.1 only, bodies with `Content-Length` (what axios and Node's fetch send), keep-alive;
//! one thread per connection, each request run on the test's (multi-thread) tokio runtime.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::{Function, TestApp, watch_router};

/// The function table a server dispatches with (a snapshot of the app's functions).
struct Table {
    functions: std::collections::HashMap<String, Function>,
    routes: matchit::Router<String>,
}

impl Table {
    /// Unrouted paths (only `/` escapes the catch-all) get any function's 404, as in `TestApp`.
    fn function_for(&self, path: &str) -> Function {
        let name = self.routes.at(path).map(|m| m.value.as_str()).unwrap_or("auth");
        self.functions.get(name).unwrap_or_else(|| panic!("function {name} is not wired into TestApp")).clone()
    }
}

impl TestApp {
    /// Serves every function on `127.0.0.1:0` until the process ends; returns the origin
    /// (`http://127.0.0.1:<port>`). Needs a multi-thread tokio runtime (the connection
    /// threads block on it while the test awaits something else).
    pub fn serve(&self) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let origin = format!("http://{}", listener.local_addr().expect("local address"));
        let table = Arc::new(Table { functions: self.functions.clone(), routes: watch_router() });
        let runtime = tokio::runtime::Handle::current();
        assert!(
            matches!(runtime.runtime_flavor(), tokio::runtime::RuntimeFlavor::MultiThread),
            "TestApp::serve needs #[tokio::test(flavor = \"multi_thread\")]: its threads block on the runtime"
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (table, runtime) = (table.clone(), runtime.clone());
                std::thread::spawn(move || connection(stream, &table, &runtime));
            }
        });
        origin
    }
}

/// Answers requests on one connection until the client closes it or asks to.
fn connection(stream: TcpStream, table: &Table, runtime: &tokio::runtime::Handle) {
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    loop {
        let request = match read_request(&mut reader) {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(message) => {
                let _ = write!(
                    writer,
                    "HTTP/1.1 400 Bad Request\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{message}",
                    message.len()
                );
                return;
            }
        };
        let close = request
            .headers()
            .get("connection")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let path = request.uri().path().to_owned();
        let function = table.function_for(&path);
        let (status, headers, body) = runtime.block_on(async move {
            let response = function.router.oneshot(request).await.expect("router is infallible");
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            (parts.status, parts.headers, bytes)
        });
        let mut head = format!("HTTP/1.1 {} {}\r\n", status.as_u16(), status.canonical_reason().unwrap_or(""));
        for (name, value) in &headers {
            if !matches!(name.as_str(), "content-length" | "transfer-encoding" | "connection") {
                head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap_or("")));
            }
        }
        head.push_str(&format!(
            "content-length: {}\r\nconnection: {}\r\n\r\n",
            body.len(),
            if close { "close" } else { "keep-alive" }
        ));
        if writer.write_all(head.as_bytes()).and_then(|()| writer.write_all(&body)).is_err() || close {
            return;
        }
    }
}

/// One request off the connection: `None` when the client closed it between requests.
fn read_request(reader: &mut BufReader<TcpStream>) -> Result<Option<Request<Body>>, String> {
    let mut line = String::new();
    if reader.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(format!("bad request line {line:?}"));
    };
    let mut builder = Request::builder().method(method).uri(target);
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).map_err(|e| e.to_string())? == 0 {
            return Err("connection closed inside the headers".into());
        }
        let header = header.trim_end_matches(['\r', '\n']);
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').ok_or_else(|| format!("bad header {header:?}"))?;
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("chunked bodies are not supported here; send content-length".into());
        }
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().map_err(|_| format!("bad content-length {value:?}"))?;
        }
        builder = builder.header(name, value);
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).map_err(|e| e.to_string())?;
    builder.body(Body::from(body)).map(Some).map_err(|e| e.to_string())
}
