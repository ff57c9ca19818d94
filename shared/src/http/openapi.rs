//! The OpenAPI 3.1 document of every declared route (`api::Route`), both faces: envelopes,
//! error statuses, security schemes (API.md §2, §8), parameters and schemas as enforced.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::api::{Access, Api, Components, Face, Route};

/// `{userId}`, `{creditTierId}`: what the handlers check (`ids`); other ids are opaque.
fn path_parameter(name: &str) -> Value {
    let schema = match name {
        "entityId" => json!({"type": "string", "examples": ["e-6f1c2a4e-8a3b-4f7d-9c1e-2b5d7a9e0f13"]}),
        "userId" => json!({"type": "string", "pattern": "^[A-Za-z0-9._:@-]{1,128}$", "examples": ["u-42"]}),
        "creditTierId" => json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$", "examples": ["starter"]}),
        "holdId" => {
            json!({"type": "string", "pattern": "^[A-Za-z0-9]{26}$", "examples": ["01JDQ2M7N8P9Q0R1S2T3V4W5X6"]})
        }
        _ => json!({"type": "string"}),
    };
    json!({"name": name, "in": "path", "required": true, "schema": schema})
}

fn path_parameters(path: &str) -> Vec<Value> {
    path.split('/').filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}')).map(path_parameter).collect()
}

/// A query type's properties, one parameter each; strings only, as a query string carries.
fn query_parameters(schema: &Value) -> Vec<Value> {
    let required: Vec<&str> =
        schema["required"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let Some(properties) = schema["properties"].as_object() else { return Vec::new() };
    properties
        .iter()
        .map(|(name, property)| {
            let mut property = property.clone();
            strip_null(&mut property);
            json!({"name": name, "in": "query", "required": required.contains(&name.as_str()), "schema": property})
        })
        .collect()
}

/// Request bodies refuse `null` at every level (`body::strict`): an optional field is left out,
/// so the schemas a body is read with lose their `null` alternatives.
fn strip_null(schema: &mut Value) {
    match schema {
        Value::Object(object) => {
            if let Some(Value::Array(types)) = object.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    object.insert("type".into(), only);
                }
            }
            for key in ["oneOf", "anyOf"] {
                if let Some(Value::Array(options)) = object.get_mut(key) {
                    options.retain(|o| o.get("type") != Some(&json!("null")));
                    if options.len() == 1 {
                        let only = options.remove(0);
                        object.remove(key);
                        if let Value::Object(only) = only {
                            object.extend(only);
                        }
                    }
                }
            }
            object.values_mut().for_each(strip_null);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_null),
        _ => {}
    }
}

const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Required where the operation needs the client's own key, unless the body names it
/// (`idempotencyKey`): the header is then the way this document can require it.
fn idempotency_parameter(required: bool) -> Value {
    json!({
        "name": IDEMPOTENCY_KEY,
        "in": "header",
        "required": required,
        "description": "1-255 printable ASCII characters; the same key and request within 24 h replays the first answer. Where required, `idempotencyKey` in the body may stand for it (when both are sent they must be equal).",
        // HTTP drops a header value's surrounding spaces, so the key cannot begin or end with one.
        "schema": {"type": "string", "pattern": "^[\\x21-\\x7E]([\\x20-\\x7E]{0,253}[\\x21-\\x7E])?$"},
    })
}

/// What every route of its kind may answer besides success.
fn error_statuses(route: &Route) -> Vec<u16> {
    let mut statuses = vec![400, 404, 405, 503];
    if route.access != Access::Public && route.access != Access::StripeSignature {
        statuses.extend([401, 403]);
    }
    if route.is_mutation() {
        statuses.extend([409, 413]);
    }
    statuses.extend(route.errors);
    statuses.sort_unstable();
    statuses.dedup();
    statuses
}

fn security(access: Access) -> Value {
    let server = [json!({"apikey": [], "apisecret": []}), json!({"apikey": [], "entityToken": []})];
    match access {
        Access::Public => json!([]),
        Access::StripeSignature => json!([{"stripeSignature": []}]),
        Access::Admin => json!([{"adminBearer": []}]),
        Access::Server => json!(server),
        Access::Member => json!([server[0], server[1], {"apikey": [], "userid": [], "token": []}]),
    }
}

fn security_schemes() -> Value {
    let header = |name: &str, description: &str| json!({"type": "apiKey", "in": "header", "name": name, "description": description});
    json!({
        "apikey": header("apikey", "The entity's public API key (k-…). Required on every /api route but the Stripe webhook."),
        "apisecret": header("apisecret", "The key's secret: beside `apikey`, the server role (the entity's backend)."),
        "userid": header("userid", "A user session: the user id the `token` was minted for."),
        "token": header("token", "A user session token (POST /api/entities/{entityId}/users/{userId}/token), with `userid`."),
        "entityToken": header("entity-authentication-token", "Quest's entity token (POST /api/entities/{entityId}/entity-tokens): beside the `apikey` that minted it, the server role."),
        "adminBearer": {"type": "http", "scheme": "bearer", "description": "ADMIN_TOKEN, for /admin."},
        "stripeSignature": header("Stripe-Signature", "Stripe's signature of the raw body with the endpoint's secret (STRIPE_WEBHOOK_SECRET), 300 s tolerance."),
    })
}

/// `{"success": true, "data": …}`.
fn success(data: Value) -> Value {
    json!({
        "type": "object",
        "required": ["success", "data"],
        "properties": {"success": {"const": true}, "data": data},
    })
}

fn error_schemas() -> Value {
    json!({
        "Error": {
            "description": "The native error envelope (API.md §1).",
            "type": "object",
            "required": ["success", "error"],
            "properties": {
                "success": {"const": false},
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string", "examples": ["VALIDATION_ERROR"]},
                        "message": {"type": "string", "description": "What is wrong, naming the field."},
                        "declineCode": {"type": "string"},
                        "userTokenExpired": {"type": "boolean"},
                    },
                },
            },
        },
        "QuestError": {
            "description": "Quest's error envelope (API.md §8): the message is `error`, the code beside it.",
            "type": "object",
            "required": ["success", "error", "code"],
            "properties": {
                "success": {"const": false},
                "error": {"type": "string", "description": "What is wrong, naming the field."},
                "code": {"type": "string", "examples": ["VALIDATION_ERROR"]},
                "userTokenExpired": {"type": "boolean"},
                "loginAgain": {"type": "boolean"},
            },
        },
    })
}

fn error_response(face: Face) -> Value {
    let reference = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
    let schema = match face {
        Face::Native => reference("Error"),
        Face::Quest => reference("QuestError"),
        Face::Both => json!({"oneOf": [reference("Error"), reference("QuestError")]}),
    };
    json!({"description": "Refused; `message` (Quest: `error`) names the field.", "content": {"application/json": {"schema": schema}}})
}

/// `requests` collects the schemas bodies and queries are read with, `answers` the rest.
fn operation(route: &Route, requests: &mut Components, answers: &mut Components) -> Value {
    let mut parameters = path_parameters(route.path);
    if let Some(query) = route.query {
        parameters.extend(query_parameters(&query(requests)));
    }
    if route.is_mutation() && route.face != Face::Quest {
        parameters.push(idempotency_parameter(route.key_required));
    }
    let mut responses = Map::new();
    let data = (route.response)(answers);
    let schema = if route.enveloped { success(data) } else { data };
    responses.insert(
        route.status.as_u16().to_string(),
        json!({"description": route.status.canonical_reason().unwrap_or("Success"), "content": {"application/json": {"schema": schema}}}),
    );
    for status in error_statuses(route) {
        responses.insert(status.to_string(), error_response(route.face));
    }
    let mut operation = json!({
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.function],
        "x-function": route.function,
        "security": security(route.access),
        "parameters": parameters,
        "responses": responses,
    });
    if let Some(request) = route.request {
        let mut schema = request(requests);
        strip_null(&mut schema);
        operation["requestBody"] = json!({"required": false, "content": {"application/json": {"schema": schema}}});
    }
    operation
}

/// The document for these functions' routes; refused when two routes share a method and
/// path or two schemas a name.
pub fn document(apis: &[Api]) -> Result<Value, String> {
    let (mut requests, mut answers) = (Components::default(), Components::default());
    let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for route in apis.iter().flat_map(Api::declarations) {
        let operation = operation(route, &mut requests, &mut answers);
        let method = route.method.as_str().to_lowercase();
        if paths.entry(route.path).or_default().insert(method, operation).is_some() {
            return Err(format!("{} {} is declared twice", route.method, route.path));
        }
    }
    // Request schemas lose `null` (see `strip_null`); answers keep it.
    for (name, mut schema) in requests.schemas {
        strip_null(&mut schema);
        answers.add(name, schema);
    }
    if !answers.conflicts.is_empty() {
        return Err(format!("schemas named alike but different: {:?}", answers.conflicts));
    }
    let mut schemas: Map<String, Value> = answers.schemas.into_iter().collect();
    if let Value::Object(errors) = error_schemas() {
        schemas.extend(errors);
    }
    Ok(json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Credits service",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Credit tiers, balances, holds and payments for entities and their users. Two faces: the native API (API.md §1-§7) and Quest Protocol's wire format (§8). Every mutation takes an Idempotency-Key.",
        },
        "servers": [{"url": "http://127.0.0.1:9000", "description": "make dev"}],
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": security_schemes()},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::api::Route;

    #[test]
    fn request_schemas_lose_null_at_every_level() {
        let mut schema = json!({
            "type": "object",
            "properties": {
                "reason": {"type": ["string", "null"]},
                "recurring": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Recurring"}]},
                "items": {"type": "array", "items": {"type": ["integer", "null"], "minimum": 1}},
            },
        });
        strip_null(&mut schema);
        assert_eq!(schema["properties"]["reason"], json!({"type": "string"}));
        assert_eq!(schema["properties"]["recurring"], json!({"$ref": "#/components/schemas/Recurring"}));
        assert_eq!(schema["properties"]["items"]["items"], json!({"type": "integer", "minimum": 1}));
    }

    #[test]
    fn a_route_declared_twice_makes_no_document() {
        let api = Api::new("one")
            .route(Route::get("/a", "first", "first"), || async { "" })
            .route(Route::get("/a", "second", "second"), || async { "" });
        assert_eq!(document(&[api]).unwrap_err(), "GET /a is declared twice");
    }

    #[test]
    fn mutations_document_the_idempotency_key_and_their_refusals() {
        let api = Api::new("one").route(Route::post("/e/{entityId}", "make", "make").key_required(), || async { "" });
        let document = document(&[api]).unwrap();
        let operation = &document["paths"]["/e/{entityId}"]["post"];
        let parameters = operation["parameters"].as_array().unwrap();
        assert_eq!(parameters[0]["name"], "entityId");
        assert_eq!(parameters[1]["name"], IDEMPOTENCY_KEY);
        assert_eq!(parameters[1]["required"], true);
        let statuses: Vec<&String> = operation["responses"].as_object().unwrap().keys().collect();
        assert_eq!(statuses, ["200", "400", "401", "403", "404", "405", "409", "413", "503"]);
        assert_eq!(operation["x-function"], "one");
    }
}
