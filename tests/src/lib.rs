//! Test harness: a real DynamoDB emulator over the wire, the functions' real routers, and a
//! client that dispatches requests to functions exactly as `cargo lambda watch` does (the
//! path → function table is read from the workspace's `Cargo.toml`).

pub mod emulator;
pub mod events;
pub mod fixtures;
pub mod instances;
pub mod ledger;
pub mod openapi;
pub mod recorder;
pub mod serve;
pub mod stores;
pub mod stripe;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use shared::AppState;
use shared::clock::{ManualClock, SharedClock, SystemClock};
use shared::config::{Config, DEFAULT_AUTH_CACHE_SECONDS, Secret, StripeConfig, WebhookConfig};

use shared::store::dynamo::DynamoStore;

use crate::recorder::Recorder;

pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const TOKEN_SIGNING_KEY: &str = "test-token-signing-key";
pub const STRIPE_SECRET_KEY: &str = "sk_test_service";
pub const STRIPE_WEBHOOK_SECRET: &str = "whsec_test_secret";
pub const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Requests' budget in tests unless a test sets its own: longer than production's, since a
/// test sends up to hundreds of requests at once through one process, which a Lambda process
/// (one request at a time) never sees; the deadline's own tests set a short one.
pub const TEST_REQUEST_BUDGET_MILLIS: u64 = 60_000;

/// How each function crate exposes its router.
type RouterFn = fn(AppState) -> Router;

/// One isolated service: its own table on the shared emulator, its own clock and caches.
pub struct TestApp {
    pub clock: Arc<ManualClock>,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub table: String,
    /// The Stripe stand-in the payments go to.
    pub stripe: String,
    functions: HashMap<String, Function>,
    routes: matchit::Router<String>,
}

/// One function as deployed: its router over its own state (caches, client), plus what
/// it asked of the store.
#[derive(Clone)]
pub struct Function {
    name: String,
    router: Router,
    pub recorder: Recorder,
    declared: Arc<Vec<String>>,
}

impl Function {
    /// The function's router, for driving it through another entry (e.g. `lambda_http`'s).
    pub fn router(&self) -> Router {
        self.router.clone()
    }
}

pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl TestResponse {
    /// The `data` of a success envelope.
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn error_message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
}

impl TestApp {
    pub async fn start() -> Self {
        Self::with_cache_seconds(shared::config::DEFAULT_AUTH_CACHE_SECONDS).await
    }

    /// A service whose functions reach the store through `endpoint` (e.g. a fault proxy);
    /// `dynamodb` stays a direct client to the emulator, for setup and checks.
    pub async fn behind(endpoint: &str) -> Self {
        Self::behind_with_budget(endpoint, TEST_REQUEST_BUDGET_MILLIS).await
    }

    /// `behind`, with requests given `budget_millis` to answer (`REQUEST_BUDGET_MS`).
    pub async fn behind_with_budget(endpoint: &str, budget_millis: u64) -> Self {
        let mut app = Self::start().await;
        let through = emulator::client_at(endpoint).await;
        let cache = (DEFAULT_AUTH_CACHE_SECONDS, budget_millis);
        app.functions = Self::functions(&through, &app.table, app.clock.clone(), cache, app.stripe.clone());
        app
    }

    /// A service whose payments go to the Stripe stand-in at `endpoint` (e.g. one of the
    /// test's own, to inject faults or stop it).
    pub async fn with_stripe_at(endpoint: &str) -> Self {
        let mut app = Self::start().await;
        app.stripe = endpoint.to_owned();
        let limits = (DEFAULT_AUTH_CACHE_SECONDS, TEST_REQUEST_BUDGET_MILLIS);
        app.functions = Self::functions(&app.dynamodb, &app.table, app.clock.clone(), limits, app.stripe.clone());
        app
    }

    pub async fn with_cache_seconds(auth_cache_seconds: u64) -> Self {
        if std::env::var_os("RUST_LOG").is_some() {
            shared::telemetry::init();
        }
        let dynamodb = emulator::client().await;
        let table = format!("test-{}", ulid::Ulid::new().to_string().to_lowercase());
        shared::store::schema::create_table(&dynamodb, &table).await.expect("create table");
        Self::on_table(dynamodb, table, auth_cache_seconds)
    }

    /// Another warm process of the same service: same table, its own caches and clock.
    pub async fn sibling(&self) -> Self {
        Self::on_table(emulator::client().await, self.table.clone(), DEFAULT_AUTH_CACHE_SECONDS)
    }

    /// The service on an existing `table` of the store at `endpoint`, payments going to
    /// `stripe`: what a separate OS process serving the functions runs (`functions-process`).
    /// Its functions keep real time, as an instance's clock does (the account forgets keys
    /// moved out a while ago).
    pub async fn attach(endpoint: &str, table: &str, stripe: &str) -> Self {
        let dynamodb = emulator::client_at(endpoint).await;
        Self::on_table_with(dynamodb, table.to_owned(), DEFAULT_AUTH_CACHE_SECONDS, stripe.to_owned(), true)
    }

    fn on_table(dynamodb: aws_sdk_dynamodb::Client, table: String, auth_cache_seconds: u64) -> Self {
        Self::on_table_with(dynamodb, table, auth_cache_seconds, emulator::stripe_endpoint().to_owned(), false)
    }

    /// `real_time`: the functions keep the system's clock instead of the test's own.
    fn on_table_with(
        dynamodb: aws_sdk_dynamodb::Client,
        table: String,
        auth_cache_seconds: u64,
        stripe: String,
        real_time: bool,
    ) -> Self {
        let clock = Arc::new(ManualClock::starting_now());
        let functions_clock: SharedClock = if real_time { Arc::new(SystemClock) } else { clock.clone() };
        let limits = (auth_cache_seconds, TEST_REQUEST_BUDGET_MILLIS);
        let functions = Self::functions(&dynamodb, &table, functions_clock, limits, stripe.clone());
        Self { clock, dynamodb, table, stripe, functions, routes: watch_router() }
    }

    /// Every function with its own state, as separate processes would have.
    fn functions(
        dynamodb: &aws_sdk_dynamodb::Client,
        table: &str,
        clock: SharedClock,
        (auth_cache_seconds, request_budget_millis): (u64, u64),
        stripe: String,
    ) -> HashMap<String, Function> {
        let config = Config {
            table_name: table.to_owned(),
            token_signing_key: Secret::new(TOKEN_SIGNING_KEY),
            admin_token: Some(Secret::new(ADMIN_TOKEN)),
            auth_cache_seconds,
            stripe: Some(StripeConfig {
                secret_key: Secret::new(STRIPE_SECRET_KEY),
                api_base: Some(stripe),
                webhook_secret: Some(Secret::new(STRIPE_WEBHOOK_SECRET)),
            }),
            webhooks: WebhookConfig { allow_local: true, retry_base_millis: events::TEST_RETRY_BASE_MILLIS },
            request_budget_millis,
        };
        let routers: [(&str, RouterFn); 7] = [
            ("admin", admin::router),
            ("tiers", tiers::router),
            ("auth", auth::router),
            ("credits", credits::router),
            ("payments", payments::router),
            ("stripe-webhook", webhook::router),
            ("webhooks", webhooks::router),
        ];
        routers
            .into_iter()
            .map(|(name, router)| {
                let recorder = Recorder::default();
                let client = aws_sdk_dynamodb::Client::from_conf(
                    dynamodb.config().to_builder().interceptor(recorder.clone()).build(),
                );
                let store = Arc::new(DynamoStore::new(client, table));
                let gateway = shared::clients::stripe(config.stripe.as_ref().expect("stripe config")).expect("gateway");
                let state = AppState::new(config.clone(), store, clock.clone()).with_payments(Arc::new(gateway));
                let function = Function {
                    name: name.to_owned(),
                    router: router(state),
                    recorder,
                    declared: Arc::new(recorder::declared_actions(name)),
                };
                (name.to_owned(), function)
            })
            .collect()
    }

    /// What a function has asked of the store so far.
    pub fn function(&self, name: &str) -> &Function {
        &self.functions[name]
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder<'_> {
        RequestBuilder { app: self, method, path: path.to_owned(), headers: Vec::new(), body: Vec::new() }
    }

    pub fn clock_millis(&self) -> i64 {
        use shared::clock::Clock;
        self.clock.now_millis()
    }

    /// Every item in the table, for "nothing was written" checks: counted with every account's
    /// journal moved out, so moving records (which any read may do) is not counted as a write.
    pub async fn item_count(&self) -> usize {
        self.move_journals_out().await;
        let output = self.dynamodb.scan().table_name(&self.table).send().await.expect("scan");
        output.count() as usize
    }

    async fn move_journals_out(&self) {
        let store = DynamoStore::new(self.dynamodb.clone(), self.table.clone());
        let slots = shared::accounts::AccountSlots::default();
        let ledger = shared::accounts::Ledger { store: &store, clock: self.clock.as_ref(), slots: &slots };
        let accounts = self
            .dynamodb
            .scan()
            .table_name(&self.table)
            .filter_expression("attribute_exists(journal)")
            .send()
            .await
            .expect("scan accounts");
        let pending = |item: &&HashMap<String, aws_sdk_dynamodb::types::AttributeValue>| {
            item.get("journal").and_then(|j| j.as_l().ok()).is_some_and(|j| !j.is_empty())
        };
        for item in accounts.items().iter().filter(pending) {
            let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            let (entity_id, user_id) = (text("entityId"), text("userId"));
            let account = shared::accounts::AccountRef::user(&entity_id, &user_id);
            shared::accounts::settle(ledger, account).await.expect("move journal out");
        }
    }

    /// The function the watch router (and API Gateway) sends this path to.
    fn router_for(&self, path_and_query: &str) -> Function {
        let path = path_and_query.split('?').next().unwrap_or_default();
        let function = match self.routes.at(path) {
            Ok(matched) => matched.value.clone(),
            // Unrouted paths: any function's 404 has the same shape.
            Err(_) => "tiers".to_owned(),
        };
        self.functions.get(&function).unwrap_or_else(|| panic!("function {function} is not wired into TestApp")).clone()
    }
}

async fn dispatch(function: Function, request: Request<Body>) -> TestResponse {
    let response = function.router.oneshot(request).await.expect("router is infallible");
    let mut used = function.recorder.actions();
    used.sort_unstable();
    used.dedup();
    recorder::note_used(&function.name, &used);
    let undeclared: Vec<_> = used.into_iter().filter(|a| !function.declared.iter().any(|d| d == a)).collect();
    assert!(
        undeclared.is_empty(),
        "function performed DynamoDB actions missing from its dynamodb-actions: {undeclared:?}"
    );
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON body") };
    TestResponse { status, headers, body }
}

/// Sends every request at once, each on its own task, and returns the answers in order.
pub async fn concurrently<F>(requests: impl IntoIterator<Item = F>) -> Vec<TestResponse>
where
    F: std::future::Future<Output = TestResponse> + Send + 'static,
{
    let handles: Vec<_> = requests.into_iter().map(tokio::spawn).collect();
    let mut responses = Vec::with_capacity(handles.len());
    for handle in handles {
        responses.push(handle.await.expect("request task"));
    }
    responses
}

/// The `[workspace.metadata.lambda.watch.router]` table of the workspace's Cargo.toml.
pub fn watch_routes() -> Vec<(String, String)> {
    let manifest = std::fs::read_to_string(format!("{WORKSPACE}/Cargo.toml")).expect("read Cargo.toml");
    let manifest: toml::Table = manifest.parse().expect("parse Cargo.toml");
    let routes = manifest["workspace"]["metadata"]["lambda"]["watch"]["router"].as_table().expect("watch router");
    routes.iter().map(|(path, function)| (path.clone(), function.as_str().expect("function name").to_owned())).collect()
}

fn watch_router() -> matchit::Router<String> {
    let mut router = matchit::Router::new();
    for (path, function) in watch_routes() {
        router.insert(path, function).expect("valid route");
    }
    router
}

pub struct RequestBuilder<'a> {
    app: &'a TestApp,
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RequestBuilder<'_> {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn headers(mut self, headers: &[(String, String)]) -> Self {
        self.headers.extend_from_slice(headers);
        self
    }

    pub fn json(mut self, body: Value) -> Self {
        self.body = body.to_string().into_bytes();
        self.header("content-type", "application/json")
    }

    pub fn raw(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self.header("content-type", "application/json")
    }

    /// Sends the request; the future owns what it needs, so it can be spawned.
    pub fn send(self) -> impl std::future::Future<Output = TestResponse> + Send + 'static {
        let mut request = Request::builder().method(self.method).uri(&self.path);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let request = request.body(Body::from(self.body)).expect("request");
        let function = self.app.router_for(&self.path);
        dispatch(function, request)
    }
}
