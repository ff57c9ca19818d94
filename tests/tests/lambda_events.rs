//! What API Gateway can deliver that the local router never does, fed as real HTTP API
//! (payload 2.0) events through `lambda_http`'s own entry (its event parsing, its request
//! conversion, its response shape), as the deployed binaries take them: a body API Gateway
//! base64-encoded (binary, or not UTF-8), and header values that are not ASCII (a client's
//! bytes arrive as UTF-8 characters in the event's JSON). Each answers in the envelope.

use axum::Router;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use integration_tests::TestApp;
use integration_tests::fixtures::EntityFixture;
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Context, LambdaEvent};
use serde_json::{Map, Value, json};
use tower::ServiceExt;

/// A body as API Gateway puts it in the event: as text, or base64-encoded.
enum Body<'a> {
    None,
    Text(&'a str),
    Base64(&'a [u8]),
}

/// An API Gateway HTTP API (payload 2.0) event, shaped as API Gateway sends it.
fn event(method: &str, path_and_query: &str, headers: &[(String, String)], body: Body<'_>) -> Value {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let mut header_map = Map::new();
    header_map.insert("host".into(), json!("abcdef1234.execute-api.us-east-1.amazonaws.com"));
    header_map.insert("content-type".into(), json!("application/json"));
    header_map.insert("x-forwarded-proto".into(), json!("https"));
    for (name, value) in headers {
        header_map.insert(name.clone(), json!(value));
    }
    let (body, base64) = match body {
        Body::None => (Value::Null, false),
        Body::Text(text) => (json!(text), false),
        Body::Base64(bytes) => (json!(STANDARD.encode(bytes)), true),
    };
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": header_map,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abcdef1234",
            "domainName": "abcdef1234.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abcdef1234",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.10",
                "userAgent": "curl/8.5.0"
            },
            "requestId": "Fq1aBjRcoAMEVyB=",
            "routeKey": "$default",
            "stage": "$default",
            "time": "23/Nov/2024:15:24:17 +0000",
            "timeEpoch": 1732375457000_i64
        },
        "body": body,
        "isBase64Encoded": base64
    })
}

/// API Gateway's view of the answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Value,
    body: Value,
}

/// The event through `lambda_http` into `router` and back, as `lambda_http::run` does it.
async fn invoke(router: Router, event: Value) -> Answer {
    let request: LambdaRequest = serde_json::from_value(event).expect("lambda_http parses the event");
    let answer = Adapter::from(router).oneshot(LambdaEvent::new(request, Context::default())).await;
    let answer = serde_json::to_value(answer.expect("the router is infallible")).expect("answer serializes");
    assert_eq!(answer["isBase64Encoded"], false, "a JSON answer goes back as text: {answer}");
    let body = answer["body"].as_str().and_then(|text| serde_json::from_str(text).ok()).expect("a JSON body");
    let status = answer["statusCode"].as_u64().and_then(|code| u16::try_from(code).ok()).expect("statusCode");
    Answer { status, headers: answer["headers"].clone(), body }
}

fn spend(entity: &EntityFixture) -> String {
    entity.path("/users/u-1/decrement-credits")
}

/// The body API Gateway hands over base64-encoded is read exactly like the same body sent as
/// text (the same request: the second is the first's replay); one that is not UTF-8 answers
/// 400 naming the body, in the native envelope and in Quest's.
#[tokio::test]
async fn a_base64_body_reads_as_the_plain_one_and_one_not_utf8_answers_400() {
    let app = TestApp::start().await;
    let entity = app.funded(10).await;
    let credits = app.function("credits").router();
    let body = r#"{"credits":2,"reason":"render"}"#;
    let keyed: Vec<_> = entity.server().into_iter().chain([("idempotency-key".into(), "spend-1".into())]).collect();

    let plain = invoke(credits.clone(), event("POST", &spend(&entity), &keyed, Body::Text(body))).await;
    assert_eq!(plain.status, 200, "{:?}", plain.body);
    assert_eq!(plain.body["data"]["account"]["balance"], 8);
    let encoded = invoke(credits.clone(), event("POST", &spend(&entity), &keyed, Body::Base64(body.as_bytes()))).await;
    assert_eq!(encoded.status, 200, "{:?}", encoded.body);
    assert_eq!(encoded.headers["idempotent-replayed"], "true", "the same request: {:?}", encoded.body);
    assert_eq!(encoded.body["data"]["entryId"], plain.body["data"]["entryId"]);
    let fresh =
        invoke(credits.clone(), event("POST", &spend(&entity), &entity.server(), Body::Base64(body.as_bytes())));
    assert_eq!(fresh.await.body["data"]["account"]["balance"], 6);

    let not_utf8 = b"{\"credits\":2,\"reason\":\"r\xe9sum\xe9\"}";
    let refused =
        invoke(credits.clone(), event("POST", &spend(&entity), &entity.server(), Body::Base64(not_utf8))).await;
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.body,
        json!({"success": false, "error": {
            "code": "VALIDATION_ERROR",
            "message": "body must be UTF-8 JSON (invalid UTF-8 at byte 24)"
        }})
    );
    assert!(refused.headers["x-request-id"].is_string(), "{:?}", refused.headers);

    // Quest's face (its decrement, §8): the same refusal in Quest's envelope.
    let quest = format!("/api/users/u-1/decrement-credits?entityId={}", entity.entity_id);
    let refused = invoke(credits, event("POST", &quest, &entity.server(), Body::Base64(b"\xff\xfe{}"))).await;
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.body,
        json!({"success": false, "error": "body must be UTF-8 JSON (invalid UTF-8 at byte 0)", "code": "VALIDATION_ERROR"})
    );
    assert_eq!(app.assert_invariant(&entity.entity_id, "u-1").await.account.balance, 6, "nothing else spent");
}

/// A header we read whose value is not printable ASCII answers 400 naming it (it read as
/// absent: 401 "apikey header is required", a `userid` ignored), in each face's envelope;
/// one we do not read changes nothing.
#[tokio::test]
async fn a_header_value_that_is_not_ascii_answers_400_naming_the_header() {
    let app = TestApp::start().await;
    let entity = app.funded(10).await;
    let body = r#"{"credits":1,"reason":"render"}"#;
    let with = |name: &str, value: &str| -> Vec<(String, String)> {
        let mut headers: Vec<_> = entity.server().into_iter().filter(|(n, _)| n != name).collect();
        headers.push((name.into(), value.into()));
        headers
    };
    let cases = [
        ("apikey", format!("{}\u{e9}", entity.apikey)),
        ("apisecret", format!("{}\u{80}", entity.apisecret)),
        ("userid", "u-\u{fc}".to_owned()),
        ("idempotency-key", "cl\u{e9}-1".to_owned()),
    ];
    let credits = app.function("credits").router();
    for (name, value) in cases {
        let answer =
            invoke(credits.clone(), event("POST", &spend(&entity), &with(name, &value), Body::Text(body))).await;
        let message = format!("{name} header must be printable ASCII");
        assert_eq!(answer.status, 400, "{name}: {:?}", answer.body);
        assert_eq!(answer.body, json!({"success": false, "error": {"code": "VALIDATION_ERROR", "message": message}}));
        assert!(answer.headers["x-request-id"].is_string(), "{:?}", answer.headers);
    }

    let bearer = [("authorization".to_owned(), "Bearer \u{e9}".to_owned())];
    let path = format!("/admin/entities/{}", entity.entity_id);
    let answer = invoke(app.function("admin").router(), event("GET", &path, &bearer, Body::None)).await;
    assert_eq!(
        (answer.status, &answer.body["error"]["message"]),
        (400, &json!("authorization header must be printable ASCII"))
    );

    // Quest's face (getCreditTiersForEntity): Quest's envelope.
    let tiers = entity.path("/credits-tiers");
    let answer =
        invoke(app.function("tiers").router(), event("GET", &tiers, &with("entityid", "\u{e9}"), Body::None)).await;
    assert_eq!(answer.status, 400, "{:?}", answer.body);
    assert_eq!(
        answer.body,
        json!({"success": false, "error": "entityid header must be printable ASCII", "code": "VALIDATION_ERROR"})
    );

    assert_eq!(app.assert_invariant(&entity.entity_id, "u-1").await.account.balance, 10, "nothing spent");
    // Headers we do not read stay opaque: a client's own user agent is no reason to refuse.
    let headers = [with("user-agent", "Beno\u{ee}t's app"), vec![("x-request-id".into(), "r\u{e9}q".into())]].concat();
    let answer = invoke(credits, event("POST", &spend(&entity), &headers, Body::Text(body))).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_ne!(answer.headers["x-request-id"], "r\u{e9}q", "a bad request id is replaced");
}
