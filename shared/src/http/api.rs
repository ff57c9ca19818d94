//! Every route is declared once, beside its handler: method, path, operation, who may call
//! it, its request and response schemas. A function's `api()` lists its declarations; its
//! router, the OpenAPI document (`openapi::document`) and the checks of the watch-router table
//! and the SAM template all read the same list.
//!
//! ```ignore
//! Api::new("tiers")
//!     .route(Route::get("/api/entities/{entityId}/credit-tiers", "listCreditTiers", "Q1: …")
//!         .access(Access::Member).query::<ListQuery>().ok_list::<Tier>(StatusCode::OK), list_tiers)
//! ```

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::Request;
use axum::handler::Handler;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::error::Error;

/// Named schemas the document's `components.schemas` collects as routes are described.
#[derive(Default)]
pub struct Components {
    pub schemas: BTreeMap<String, Value>,
    /// Names given to two different schemas (two types called alike): the document refuses them.
    pub conflicts: Vec<String>,
}

impl Components {
    pub fn add(&mut self, name: String, schema: Value) {
        match self.schemas.get(&name) {
            Some(known) if *known != schema => self.conflicts.push(name),
            _ => {
                self.schemas.insert(name, schema);
            }
        }
    }
}

/// Writes a type's schema (and the schemas it refers to) into `components`, and answers the
/// schema to use in its place (a `$ref`, or the schema itself for unnamed types).
pub type SchemaFn = fn(&mut Components) -> Value;

/// `T`'s schema, named after `T` in `components`.
pub fn schema_of<T: ToSchema>(components: &mut Components) -> Value {
    let mut nested = Vec::new();
    T::schemas(&mut nested);
    for (name, schema) in nested {
        components.add(name, json_of(&schema));
    }
    let name = T::name().into_owned();
    components.add(name.clone(), json_of(&T::schema()));
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// A JSON array of `T`.
pub fn list_of<T: ToSchema>(components: &mut Components) -> Value {
    json!({"type": "array", "items": schema_of::<T>(components)})
}

/// `T`'s schema inline (query parameters are listed one by one, never by reference).
pub fn inline_of<T: ToSchema>(components: &mut Components) -> Value {
    let mut nested = Vec::new();
    T::schemas(&mut nested);
    for (name, schema) in nested {
        components.add(name, json_of(&schema));
    }
    json_of(&T::schema())
}

/// Any JSON object: for answers whose shape is not (yet) a declared type.
pub fn any_object(_: &mut Components) -> Value {
    json!({"type": "object"})
}

fn json_of(schema: &impl serde::Serialize) -> Value {
    serde_json::to_value(schema).unwrap_or(Value::Null)
}

/// Who may call a route (API.md §2, §8); the document's security requirements follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credentials.
    Public,
    /// `authorization: Bearer <ADMIN_TOKEN>`.
    Admin,
    /// The entity's backend: `apikey` + `apisecret`, or `apikey` + `entity-authentication-token`.
    Server,
    /// The server, or a user session (`apikey` + `userid` + `token`); the handler decides
    /// which users (that user, owners).
    Member,
    /// Stripe's `Stripe-Signature` over the raw body.
    StripeSignature,
}

/// Which wire a route speaks: the native API (§1) or Quest's (§8), whose error envelope differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Face {
    Native,
    Quest,
    /// One path, two bodies: the body decides which face answers (create-payment-intent).
    Both,
}

/// One route's declaration.
#[derive(Clone)]
pub struct Route {
    pub method: Method,
    /// `method` as axum filters on it.
    filter: MethodFilter,
    /// In OpenAPI's and the watch router's syntax (`{entityId}`), which axum reads as is.
    pub path: &'static str,
    pub operation_id: &'static str,
    pub summary: &'static str,
    pub access: Access,
    pub face: Face,
    pub status: StatusCode,
    pub request: Option<SchemaFn>,
    pub query: Option<SchemaFn>,
    pub response: SchemaFn,
    /// Whether the answer is in the success envelope (every route's but the document's).
    pub enveloped: bool,
    /// Whether the client must send its own `Idempotency-Key` (grants, purchases).
    pub key_required: bool,
    /// Error statuses beyond those every route of its kind may answer (`openapi::error_statuses`).
    pub errors: &'static [u16],
    /// The function that serves it (set by `Api::route`).
    pub function: &'static str,
}

impl Route {
    fn new(
        (method, filter): (Method, MethodFilter),
        path: &'static str,
        operation_id: &'static str,
        summary: &'static str,
    ) -> Self {
        Self {
            method,
            filter,
            path,
            operation_id,
            summary,
            access: Access::Member,
            face: Face::Native,
            status: StatusCode::OK,
            request: None,
            query: None,
            response: any_object,
            enveloped: true,
            key_required: false,
            errors: &[],
            function: "",
        }
    }

    pub fn get(path: &'static str, operation_id: &'static str, summary: &'static str) -> Self {
        Self::new((Method::GET, MethodFilter::GET), path, operation_id, summary)
    }

    pub fn post(path: &'static str, operation_id: &'static str, summary: &'static str) -> Self {
        Self::new((Method::POST, MethodFilter::POST), path, operation_id, summary)
    }

    pub fn put(path: &'static str, operation_id: &'static str, summary: &'static str) -> Self {
        Self::new((Method::PUT, MethodFilter::PUT), path, operation_id, summary)
    }

    pub fn patch(path: &'static str, operation_id: &'static str, summary: &'static str) -> Self {
        Self::new((Method::PATCH, MethodFilter::PATCH), path, operation_id, summary)
    }

    pub fn delete(path: &'static str, operation_id: &'static str, summary: &'static str) -> Self {
        Self::new((Method::DELETE, MethodFilter::DELETE), path, operation_id, summary)
    }

    pub fn access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    pub fn quest(mut self) -> Self {
        self.face = Face::Quest;
        self
    }

    pub fn both_faces(mut self) -> Self {
        self.face = Face::Both;
        self
    }

    /// The JSON body, parsed as `T` (or by `schema`, for bodies more than one type reads).
    pub fn body<T: ToSchema>(self) -> Self {
        self.body_schema(schema_of::<T>)
    }

    pub fn body_schema(mut self, schema: SchemaFn) -> Self {
        self.request = Some(schema);
        self
    }

    /// The query string, parsed as `T`.
    pub fn query<T: ToSchema>(mut self) -> Self {
        self.query = Some(inline_of::<T>);
        self
    }

    /// The success status and what `data` holds.
    pub fn ok<T: ToSchema>(self, status: StatusCode) -> Self {
        self.answers(status, schema_of::<T>)
    }

    /// The success status and a list of `T` in `data`.
    pub fn ok_list<T: ToSchema>(self, status: StatusCode) -> Self {
        self.answers(status, list_of::<T>)
    }

    pub fn answers(mut self, status: StatusCode, schema: SchemaFn) -> Self {
        self.status = status;
        self.response = schema;
        self
    }

    /// The client must name its own idempotency key (header, or `idempotencyKey` in the body).
    pub fn key_required(mut self) -> Self {
        self.key_required = true;
        self
    }

    /// The answer is the schema itself, not `{"success": true, "data": …}`.
    pub fn bare(mut self) -> Self {
        self.enveloped = false;
        self
    }

    /// Statuses this route answers beyond the common ones (402 for spends and payments, …).
    pub fn errors(mut self, errors: &'static [u16]) -> Self {
        self.errors = errors;
        self
    }

    pub fn is_mutation(&self) -> bool {
        self.method != Method::GET && self.method != Method::DELETE
    }
}

/// A function's routes: each declaration with its handler.
pub struct Api {
    pub function: &'static str,
    routes: Vec<(Route, MethodRouter<AppState>)>,
}

impl Api {
    pub fn new(function: &'static str) -> Self {
        Self { function, routes: Vec::new() }
    }

    /// Declares `route`, served by `handler`.
    pub fn route<H, T>(mut self, mut route: Route, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        route.function = self.function;
        let filter = route.filter;
        self.routes.push((route, on(filter, handler)));
        self
    }

    /// Another group of this function's routes (Quest's face beside the native one).
    pub fn merge(mut self, other: Api) -> Self {
        for (mut route, handler) in other.routes {
            route.function = self.function;
            self.routes.push((route, handler));
        }
        self
    }

    pub fn declarations(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter().map(|(route, _)| route)
    }

    /// The function's router: every declared route, behind `readable_headers`; errors of
    /// Quest-face routes in Quest's envelope; then `finish` (404/405 in the envelope, request
    /// ids, state).
    pub fn router(self, state: AppState) -> Router {
        let (mut native, mut quest) = (Router::new(), Router::new());
        let mut has_quest = false;
        for (route, handler) in self.routes {
            let handler = handler.route_layer(axum::middleware::from_fn(readable_headers));
            match route.face {
                Face::Quest => {
                    quest = quest.route(route.path, handler);
                    has_quest = true;
                }
                Face::Native | Face::Both => native = native.route(route.path, handler),
            }
        }
        // axum refuses a route layer on a router without routes.
        if has_quest {
            native = native.merge(quest.route_layer(axum::middleware::from_fn(super::quest::error_envelope)));
        }
        super::finish(native, state)
    }
}

/// Every request header this service reads. `HeaderValue::to_str` reads a value that is not
/// printable ASCII as absent, so a malformed `apikey` answered 401 "required" and a malformed
/// `userid` was ignored; API Gateway does pass such values on (a client's non-ASCII bytes
/// arrive as UTF-8 characters). `x-request-id` is not here: a bad one is replaced, not refused.
const TEXT_HEADERS: [&str; 10] = [
    "apikey",
    "apisecret",
    "userid",
    "token",
    "entityid",
    crate::auth::token::ENTITY_HEADER,
    "authorization",
    crate::auth::admin::ADMIN_TOKEN_HEADER,
    super::IDEMPOTENCY_HEADER,
    "stripe-signature",
];

/// Refuses, with 400 naming the header, a request whose value of a header we read is not
/// printable ASCII. A route layer, so Quest's routes answer in Quest's envelope.
async fn readable_headers(request: Request, next: Next) -> Response {
    let unreadable =
        TEXT_HEADERS.iter().find(|name| request.headers().get_all(**name).iter().any(|value| value.to_str().is_err()));
    match unreadable {
        Some(name) => Error::validation(format!("{name} header must be printable ASCII")).into_response(),
        None => next.run(request).await,
    }
}
