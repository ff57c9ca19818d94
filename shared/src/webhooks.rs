//! Posting a signed event to an endpoint: the port the dispatcher uses, and its HTTP
//! implementation, which refuses private, loopback (unless local webhooks are allowed),
//! link-local and metadata addresses again after DNS, on every connection.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;

use crate::domain::webhook::{check_address, check_url};

/// One delivery attempt's request.
pub struct Outgoing<'a> {
    pub url: &'a str,
    pub headers: Vec<(&'static str, String)>,
    pub body: &'a str,
}

/// How an attempt went: the endpoint's status code, or why no answer came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    Answered(u16),
    Failed(String),
}

impl Sent {
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Answered(code) if (200..300).contains(code))
    }
}

#[async_trait]
pub trait WebhookSender: Send + Sync {
    async fn post(&self, request: Outgoing<'_>) -> Sent;
}

/// Resolves names like the system does, then refuses the whole name if any address it
/// resolves to is one a delivery must not reach (so DNS cannot smuggle one in).
#[derive(Clone)]
struct CheckedResolver {
    allow_local: bool,
}

impl tower::Service<Name> for CheckedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_local = self.allow_local;
        Box::pin(async move {
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            if addresses.iter().any(|a| check_address(a.ip(), allow_local).is_err()) {
                return Err(std::io::Error::other("the host resolves to a refused address"));
            }
            Ok(addresses.into_iter())
        })
    }
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector<CheckedResolver>>, Full<Bytes>>;

/// HTTPS (and, for local runs, plain HTTP to loopback) with a time-out per attempt.
pub struct HttpSender {
    client: HttpsClient,
    timeout: Duration,
    allow_local: bool,
}

impl HttpSender {
    pub fn new(timeout: Duration, allow_local: bool) -> Self {
        let mut http = HttpConnector::new_with_resolver(CheckedResolver { allow_local });
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(https);
        Self { client, timeout, allow_local }
    }

    async fn send(&self, request: Outgoing<'_>) -> Result<u16, String> {
        // The URL was checked when registered; the rules may have changed since (e.g. local
        // webhooks turned off), so it is checked again.
        check_url(request.url, self.allow_local).map_err(|e| e.message())?;
        let mut builder = hyper::Request::post(request.url).header("content-type", "application/json");
        for (name, value) in request.headers {
            builder = builder.header(name, value);
        }
        let http_request =
            builder.body(Full::new(Bytes::from(request.body.to_owned()))).map_err(|e| format!("bad request: {e}"))?;
        match tokio::time::timeout(self.timeout, self.client.request(http_request)).await {
            Ok(Ok(response)) => Ok(response.status().as_u16()),
            Ok(Err(err)) => Err(describe(&err)),
            Err(_) => Err(format!("no answer within {} ms", self.timeout.as_millis())),
        }
    }
}

/// The innermost cause of a client error (hyper's own message is only "client error").
fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

#[async_trait]
impl WebhookSender for HttpSender {
    async fn post(&self, request: Outgoing<'_>) -> Sent {
        match self.send(request).await {
            Ok(code) => Sent::Answered(code),
            Err(reason) => Sent::Failed(reason),
        }
    }
}
