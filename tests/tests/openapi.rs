//! The OpenAPI document against what it describes: `docs/openapi.json` is what the declarations
//! make, the `auth` function serves exactly it, every documented operation is served (and no
//! other method on a documented path), and the watch router (hence the SAM template, which
//! infra/test_infra.py holds to it) sends each declared route to the function declaring it.

use axum::http::{Method, StatusCode};
use integration_tests::openapi::{DOCUMENT_PATH, apis, document_text};
use integration_tests::{TestApp, watch_routes};
use serde_json::Value;

fn kept_document() -> String {
    std::fs::read_to_string(DOCUMENT_PATH).unwrap_or_else(|e| panic!("read {DOCUMENT_PATH}: {e}"))
}

#[test]
fn the_kept_document_is_what_the_declarations_make() {
    let made = document_text().unwrap_or_else(|problem| panic!("the declarations make no document: {problem}"));
    assert!(made == kept_document(), "docs/openapi.json is stale: run `make openapi` and commit it");
}

#[tokio::test]
async fn the_document_is_served_without_credentials() {
    let app = TestApp::start().await;
    let served = app.request(Method::GET, "/api/openapi.json").send().await;
    assert_eq!(served.status, StatusCode::OK, "{}", served.body);
    let kept: Value = serde_json::from_str(&kept_document()).expect("docs/openapi.json is JSON");
    assert_eq!(served.body, kept);
    assert_eq!(served.body["openapi"], "3.1.0");
}

/// Every declared route: the watch router sends its path to the function that declares it;
/// every entry of the table (but the catch-all) serves some declared route of its function.
#[test]
fn the_watch_router_sends_each_declared_route_to_its_function() {
    let table = watch_routes();
    let mut router = matchit::Router::new();
    for (path, function) in &table {
        router.insert(path.clone(), function.clone()).expect("valid watch route");
    }
    let mut problems = Vec::new();
    for api in apis() {
        for route in api.declarations() {
            match router.at(route.path) {
                Ok(matched) if matched.value == route.function => {}
                Ok(matched) => {
                    problems.push(format!("{} goes to {}, declared by {}", route.path, matched.value, route.function))
                }
                Err(_) => problems.push(format!("{} ({}) is not in the watch router", route.path, route.function)),
            }
        }
    }
    assert!(problems.is_empty(), "watch router and declarations differ:\n  {}", problems.join("\n  "));
    for (path, function) in &table {
        if path == "/{*path}" {
            continue;
        }
        let serves_one = apis()
            .iter()
            .filter(|api| api.function == function)
            .flat_map(|api| api.declarations().map(|route| route.path).collect::<Vec<_>>())
            .any(|declared| covers(path, declared));
        assert!(serves_one, "watch route {path} -> {function} serves no route {function} declares");
    }
}

/// Whether the watch-router pattern `pattern` matches the declared path `declared`.
fn covers(pattern: &str, declared: &str) -> bool {
    let mut router = matchit::Router::new();
    router.insert(pattern, ()).expect("valid pattern");
    router.at(declared).is_ok()
}

/// A path of the document with its parameters filled in.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment {
            "{entityId}" => "e-00000000-0000-4000-8000-000000000000",
            s if s.starts_with('{') => "x1",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Without credentials, a documented operation is refused by its handler (never the router's
/// 404/405); any other method on a documented path answers 405.
#[tokio::test]
async fn documented_operations_are_served_and_nothing_else() {
    let app = TestApp::start().await;
    let document: Value = serde_json::from_str(&kept_document()).expect("docs/openapi.json is JSON");
    let methods = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];
    let mut problems = Vec::new();
    for (path, operations) in document["paths"].as_object().expect("paths") {
        for method in &methods {
            let documented = operations.get(method.as_str().to_lowercase()).is_some();
            let answer = app.request(method.clone(), &concrete(path)).send().await;
            let routed =
                answer.status != StatusCode::METHOD_NOT_ALLOWED && !answer.body.to_string().contains("no such route");
            if documented != routed {
                problems.push(format!(
                    "{method} {path}: documented {documented}, answered {} {}",
                    answer.status, answer.body
                ));
            }
        }
    }
    assert!(problems.is_empty(), "served and documented differ:\n  {}", problems.join("\n  "));
}
