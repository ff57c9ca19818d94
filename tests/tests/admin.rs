//! Admin routes (§2) over HTTP against the emulator.

use axum::http::{Method, StatusCode};
use integration_tests::TestApp;
use integration_tests::fixtures::admin;
use serde_json::json;

#[tokio::test]
async fn creates_reads_and_updates_an_entity() {
    let app = TestApp::start().await;
    let created = app
        .request(Method::POST, "/admin/entities")
        .headers(&admin())
        .json(json!({"name": "Acme", "ownerUserIds": ["u-1"], "currency": "usd"}))
        .send()
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["success"], true);
    let data = created.data();
    let entity_id = data["entityId"].as_str().unwrap();
    assert!(entity_id.starts_with("e-") && entity_id.len() == 38, "{entity_id}");
    assert_eq!(data["name"], "Acme");
    assert_eq!(data["ownerUserIds"], json!(["u-1"]));
    assert_eq!(data["currency"], "usd");
    let apikey = data["apikey"].as_str().unwrap();
    assert!(apikey.starts_with("k-"));
    assert!(data["apisecret"].as_str().unwrap().len() > 40);
    assert_eq!(data["apikeys"], json!([apikey]));
    assert!(created.headers.contains_key("x-request-id"));

    let read = app.request(Method::GET, &format!("/admin/entities/{entity_id}")).headers(&admin()).send().await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.data()["name"], "Acme");
    assert_eq!(read.data()["apikeys"], json!([apikey]));
    assert!(read.data().get("apisecret").is_none(), "no secrets on reads");
    assert!(!read.body.to_string().contains("secretHash"));

    let owners = app
        .request(Method::PUT, &format!("/admin/entities/{entity_id}/owners"))
        .headers(&admin())
        .json(json!({"ownerUserIds": ["u-2", "u-3"]}))
        .send()
        .await;
    assert_eq!(owners.status, StatusCode::OK);
    assert_eq!(owners.data()["ownerUserIds"], json!(["u-2", "u-3"]));
    assert_eq!(owners.data()["entityId"], entity_id);
}

#[tokio::test]
async fn rotates_and_revokes_keys() {
    let app = TestApp::start().await;
    let entity = app.entity(&["u-1"]).await;
    let rotated = app
        .request(Method::POST, &format!("/admin/entities/{}/api-keys", entity.entity_id))
        .headers(&admin())
        .send()
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED);
    let new_key = rotated.data()["apikey"].as_str().unwrap().to_owned();
    let new_secret = rotated.data()["apisecret"].as_str().unwrap().to_owned();
    assert_ne!(new_key, entity.apikey);

    // Both keys work.
    for (key, secret) in [(&entity.apikey, &entity.apisecret), (&new_key, &new_secret)] {
        let listed = app
            .request(Method::GET, &entity.path("/credit-tiers"))
            .header("apikey", key)
            .header("apisecret", secret)
            .send()
            .await;
        assert_eq!(listed.status, StatusCode::OK);
    }

    let revoked = app
        .request(Method::DELETE, &format!("/admin/entities/{}/api-keys/{}", entity.entity_id, entity.apikey))
        .headers(&admin())
        .send()
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert_eq!(revoked.data()["revoked"], true);
    let read =
        app.request(Method::GET, &format!("/admin/entities/{}", entity.entity_id)).headers(&admin()).send().await;
    assert_eq!(read.data()["apikeys"], json!([new_key]));

    // Other functions cached the key; they refuse it once the cache bound has passed.
    app.clock.advance_seconds(shared::config::DEFAULT_AUTH_CACHE_SECONDS as i64);
    let refused = app.request(Method::GET, &entity.path("/credit-tiers")).headers(&entity.server()).send().await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);

    let again = app
        .request(Method::DELETE, &format!("/admin/entities/{}/api-keys/{}", entity.entity_id, entity.apikey))
        .headers(&admin())
        .send()
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

/// Another warm process that cached the key before the revocation stops accepting it
/// within the documented bound (AUTH_CACHE_SECONDS, default 30 s).
#[tokio::test]
async fn a_revoked_key_stops_working_in_other_processes_within_the_bound() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    let other_process = app.sibling().await;
    let path = entity.path("/credit-tiers");
    assert_eq!(other_process.request(Method::GET, &path).headers(&entity.server()).send().await.status, StatusCode::OK);

    let revoke = format!("/admin/entities/{}/api-keys/{}", entity.entity_id, entity.apikey);
    assert_eq!(app.request(Method::DELETE, &revoke).headers(&admin()).send().await.status, StatusCode::OK);

    other_process.clock.advance_seconds(29);
    let cached = other_process.request(Method::GET, &path).headers(&entity.server()).send().await;
    assert_eq!(cached.status, StatusCode::OK, "within the bound the cached key may still answer");
    other_process.clock.advance_seconds(1);
    let refused = other_process.request(Method::GET, &path).headers(&entity.server()).send().await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.error_code(), "UNAUTHENTICATED");
}

#[tokio::test]
async fn behind_iam_the_admin_token_may_come_in_its_own_header() {
    let app = TestApp::start().await;
    let signed = app
        .request(Method::POST, "/admin/entities")
        .header("authorization", "AWS4-HMAC-SHA256 Credential=AKIA/20261123/us-east-1/execute-api/aws4_request")
        .header("x-admin-token", integration_tests::ADMIN_TOKEN)
        .json(json!({"name": "Acme", "currency": "usd"}))
        .send()
        .await;
    assert_eq!(signed.status, StatusCode::CREATED);
    let wrong = app
        .request(Method::GET, "/admin/entities/e-00000000-0000-0000-0000-000000000000")
        .header("x-admin-token", "nope")
        .send()
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn admin_routes_need_the_admin_bearer() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    let before = app.item_count().await;
    let body = json!({"name": "X", "currency": "usd"});
    for headers in [vec![], vec![("authorization".to_owned(), "Bearer wrong".to_owned())], entity.server()] {
        for (method, path) in [
            (Method::POST, "/admin/entities".to_owned()),
            (Method::GET, format!("/admin/entities/{}", entity.entity_id)),
            (Method::PUT, format!("/admin/entities/{}/owners", entity.entity_id)),
            (Method::POST, format!("/admin/entities/{}/api-keys", entity.entity_id)),
            (Method::DELETE, format!("/admin/entities/{}/api-keys/{}", entity.entity_id, entity.apikey)),
        ] {
            let response = app.request(method, &path).headers(&headers).json(body.clone()).send().await;
            assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{path}");
            assert_eq!(response.error_code(), "UNAUTHENTICATED");
        }
    }
    assert_eq!(app.item_count().await, before, "nothing written");
}

#[tokio::test]
async fn bad_entity_input_names_the_field_and_writes_nothing() {
    let app = TestApp::start().await;
    let before = app.item_count().await;
    let cases = [
        (json!({"ownerUserIds": [], "currency": "usd"}), "name"),
        (json!({"name": "", "currency": "usd"}), "name"),
        (json!({"name": "A", "currency": "USD"}), "currency"),
        (json!({"name": "A"}), "currency"),
        (json!({"name": "A", "currency": "usd", "ownerUserIds": ["bad id"]}), "ownerUserIds"),
        (json!({"name": "A", "currency": "usd", "ownerUserIds": "u-1"}), "ownerUserIds"),
        (json!({"name": "A", "currency": "usd", "color": "red"}), "color"),
    ];
    for (body, field) in cases {
        let response = app.request(Method::POST, "/admin/entities").headers(&admin()).json(body.clone()).send().await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(response.error_code(), "VALIDATION_ERROR");
        assert!(response.error_message().contains(field), "{body}: {}", response.error_message());
    }
    let missing = app
        .request(Method::GET, "/admin/entities/e-00000000-0000-0000-0000-000000000000")
        .headers(&admin())
        .send()
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let malformed = app.request(Method::GET, "/admin/entities/nope").headers(&admin()).send().await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert!(malformed.error_message().contains("entityId"));
    assert_eq!(app.item_count().await, before);
}

#[tokio::test]
async fn entity_creation_is_idempotent_and_never_replays_the_secret() {
    let app = TestApp::start().await;
    let body = json!({"name": "Acme", "currency": "usd"});
    let send = |body| {
        app.request(Method::POST, "/admin/entities")
            .headers(&admin())
            .header("idempotency-key", "create-1")
            .json(body)
            .send()
    };
    let first = send(body.clone()).await;
    let replay = send(body).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(replay.status, StatusCode::CREATED);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.data()["entityId"], first.data()["entityId"]);
    assert_eq!(replay.data()["apikey"], first.data()["apikey"]);
    assert!(first.data()["apisecret"].is_string());
    assert!(replay.data()["apisecret"].is_null(), "secrets are stored only hashed");
    let other = send(json!({"name": "Other", "currency": "usd"})).await;
    assert_eq!(other.status, StatusCode::CONFLICT);
    assert_eq!(other.error_code(), "IDEMPOTENCY_KEY_REUSED");
}
