//! The §2 authentication and role matrix, for every route so far. Refusals write nothing.

use axum::http::{Method, StatusCode};
use integration_tests::TestApp;
use integration_tests::fixtures::{EntityFixture, Headers};
use serde_json::{Value, json};

struct Route {
    method: Method,
    path: String,
    body: Value,
    /// Which of server / owner / the path's own user / another user may call it.
    server: bool,
    owner: bool,
    own_user: bool,
    other_user: bool,
}

fn routes(entity: &EntityFixture) -> Vec<Route> {
    let tier = json!({"name": "T", "credits": 1, "price": 1});
    let route = |method, rest: &str, body: Value, allowed: [bool; 4]| Route {
        method,
        path: entity.path(rest),
        body,
        server: allowed[0],
        owner: allowed[1],
        own_user: allowed[2],
        other_user: allowed[3],
    };
    vec![
        route(Method::GET, "/credit-tiers", json!(null), [true, true, true, true]),
        route(Method::POST, "/credit-tiers", tier, [true, true, false, false]),
        route(Method::GET, "/credit-tiers/t1", json!(null), [true, true, true, true]),
        route(Method::PATCH, "/credit-tiers/t1", json!({"price": 2}), [true, true, false, false]),
        route(Method::GET, "/users/u-1/credit-tiers", json!(null), [true, true, true, false]),
        route(Method::POST, "/users/u-1/token", json!({}), [true, false, false, false]),
        route(Method::POST, "/entity-tokens", json!({}), [true, false, false, false]),
    ]
}

async fn call(app: &TestApp, route: &Route, headers: &Headers) -> integration_tests::TestResponse {
    let request = app.request(route.method.clone(), &route.path).headers(headers);
    let request = if route.body.is_null() { request } else { request.json(route.body.clone()) };
    request.send().await
}

#[tokio::test]
async fn every_route_refuses_bad_credentials_and_writes_nothing() {
    let app = TestApp::start().await;
    let entity = app.entity(&["owner"]).await;
    let other_entity = app.entity(&["owner"]).await;
    app.tier(&entity, json!({"creditTierId": "t1", "name": "T", "credits": 1, "price": 1})).await;
    let good_token = app.token(&entity, "u-1").await;
    let foreign_token = app.token(&other_entity, "u-1").await;
    let expiring = {
        let response = app
            .request(Method::POST, &entity.path("/users/u-1/token"))
            .headers(&entity.server())
            .json(json!({"ttlSeconds": 60}))
            .send()
            .await;
        response.data()["token"].as_str().unwrap().to_owned()
    };
    let before = app.item_count().await;

    let with_key = |extra: &[(&str, &str)]| -> Headers {
        let mut headers = vec![("apikey".to_owned(), entity.apikey.clone())];
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        headers
    };
    let unauthenticated: Vec<(&str, Headers)> = vec![
        ("no apikey", vec![]),
        ("no apikey, valid session", vec![("userid".into(), "u-1".into()), ("token".into(), good_token.clone())]),
        (
            "unknown apikey",
            vec![
                ("apikey".into(), "k-00000000-0000-0000-0000-000000000000".into()),
                ("apisecret".into(), entity.apisecret.clone()),
            ],
        ),
        ("garbage apikey", vec![("apikey".into(), "nonsense".into())]),
        ("wrong apisecret", with_key(&[("apisecret", "s-wrong")])),
        ("other entity's apisecret", with_key(&[("apisecret", &other_entity.apisecret)])),
        ("apikey alone", with_key(&[])),
        ("userid without token", with_key(&[("userid", "u-1")])),
        ("token without userid", with_key(&[("token", &good_token)])),
        ("garbled token", with_key(&[("userid", "u-1"), ("token", "abc.def.ghi")])),
        ("tampered token", with_key(&[("userid", "u-1"), ("token", &format!("{good_token}x"))])),
        ("token of another user", with_key(&[("userid", "u-2"), ("token", &good_token)])),
        ("token of another entity", with_key(&[("userid", "u-1"), ("token", &foreign_token)])),
    ];
    app.clock.advance_seconds(61);
    let mut cases = unauthenticated;
    cases.push(("expired token", with_key(&[("userid", "u-1"), ("token", &expiring)])));

    for route in routes(&entity) {
        for (case, headers) in &cases {
            let response = call(&app, &route, headers).await;
            assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{} {}: {case}", route.method, route.path);
            assert_eq!(response.error_code(), "UNAUTHENTICATED");
        }
        // The other entity's valid server credentials on this entity's path.
        let response = call(&app, &route, &other_entity.server()).await;
        assert_eq!(response.status, StatusCode::FORBIDDEN, "{} {}: other entity", route.method, route.path);
    }
    assert_eq!(app.item_count().await, before, "refused requests write nothing");
}

#[tokio::test]
async fn roles_get_exactly_what_the_contract_allows() {
    let app = TestApp::start().await;
    let entity = app.entity(&["owner"]).await;
    app.tier(&entity, json!({"creditTierId": "t1", "name": "T", "credits": 1, "price": 1})).await;
    let callers = [
        ("server", entity.server()),
        ("owner", app.session(&entity, "owner").await),
        ("own user", app.session(&entity, "u-1").await),
        ("other user", app.session(&entity, "u-2").await),
    ];
    for route in routes(&entity) {
        let allowed = [route.server, route.owner, route.own_user, route.other_user];
        for ((who, headers), allowed) in callers.iter().zip(allowed) {
            let before = app.item_count().await;
            let response = call(&app, &route, headers).await;
            if allowed {
                assert!(response.status.is_success(), "{} {} as {who}: {:?}", route.method, route.path, response.body);
            } else {
                assert_eq!(response.status, StatusCode::FORBIDDEN, "{} {} as {who}", route.method, route.path);
                assert_eq!(response.error_code(), "FORBIDDEN");
                assert_eq!(app.item_count().await, before, "{} {} as {who} wrote", route.method, route.path);
            }
        }
    }
}

#[tokio::test]
async fn token_minting_validates_its_input() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    for (body, field) in [
        (json!({"ttlSeconds": 59}), "ttlSeconds"),
        (json!({"ttlSeconds": 86401}), "ttlSeconds"),
        (json!({"ttlSeconds": 1.5}), "ttlSeconds"),
        (json!({"ttl": 60}), "ttl"),
    ] {
        let response = app
            .request(Method::POST, &entity.path("/users/u-1/token"))
            .headers(&entity.server())
            .json(body.clone())
            .send()
            .await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(response.error_message().contains(field), "{body}");
    }
    let bad_user = app
        .request(Method::POST, &entity.path("/users/bad%20id/token"))
        .headers(&entity.server())
        .json(json!({}))
        .send()
        .await;
    assert_eq!(bad_user.status, StatusCode::BAD_REQUEST);
    assert!(bad_user.error_message().contains("userId"));

    let minted = app
        .request(Method::POST, &entity.path("/users/u-1/token"))
        .headers(&entity.server())
        .json(json!({"ttlSeconds": 600}))
        .send()
        .await;
    assert_eq!(minted.status, StatusCode::CREATED);
    let expires = minted.data()["expiresAt"].as_str().unwrap();
    let expected = shared::clock::rfc3339((app.clock_millis() / 1000 + 600) * 1000);
    assert_eq!(expires, expected);
}
