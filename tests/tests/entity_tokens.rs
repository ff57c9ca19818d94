//! Entity authentication tokens (Quest's `entity-authentication-token`): minted by the
//! entity's server, they grant the server role beside the key that minted them, never for
//! another entity, and stop with that key's revocation or their expiry.

use axum::http::{Method, StatusCode};
use integration_tests::TestApp;
use integration_tests::fixtures::{EntityFixture, Headers, admin};
use serde_json::json;

async fn mint(app: &TestApp, entity: &EntityFixture, ttl_seconds: u64) -> String {
    let response = app
        .request(Method::POST, &entity.path("/entity-tokens"))
        .headers(&entity.server())
        .json(json!({"ttlSeconds": ttl_seconds}))
        .send()
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{:?}", response.body);
    assert_eq!(response.data()["apikey"], entity.apikey.as_str());
    response.data()["token"].as_str().expect("token").to_owned()
}

fn with_token(apikey: &str, token: &str) -> Headers {
    vec![("apikey".into(), apikey.into()), ("entity-authentication-token".into(), token.into())]
}

/// A server-only operation: granting credits.
async fn grant(app: &TestApp, entity: &EntityFixture, headers: &Headers, key: &str) -> StatusCode {
    app.request(Method::POST, &entity.path("/users/u-1/buy-credits"))
        .headers(headers)
        .json(json!({"credits": 5, "idempotencyKey": key}))
        .send()
        .await
        .status
}

#[tokio::test]
async fn an_entity_token_acts_as_the_entitys_server() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    let token = mint(&app, &entity, 3600).await;
    assert_eq!(grant(&app, &entity, &with_token(&entity.apikey, &token), "g-1").await, StatusCode::OK);
    let account = app.request(Method::GET, &entity.path("/users/u-1/credits")).headers(&entity.server()).send().await;
    assert_eq!(account.data()["balance"], 5);
}

#[tokio::test]
async fn an_entity_token_never_works_for_another_entity_or_beside_another_key() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    let other = app.entity(&[]).await;
    let token = mint(&app, &entity, 3600).await;
    let before = app.item_count().await;

    let beside_other_entitys_key = with_token(&other.apikey, &token);
    assert_eq!(grant(&app, &other, &beside_other_entitys_key, "g-1").await, StatusCode::UNAUTHORIZED);
    assert_eq!(grant(&app, &entity, &beside_other_entitys_key, "g-2").await, StatusCode::UNAUTHORIZED);
    let other_token = mint(&app, &other, 3600).await;
    assert_eq!(grant(&app, &entity, &with_token(&other.apikey, &other_token), "g-3").await, StatusCode::FORBIDDEN);
    let rotated = app
        .request(Method::POST, &format!("/admin/entities/{}/api-keys", entity.entity_id))
        .headers(&admin())
        .send()
        .await;
    let second_key = rotated.data()["apikey"].as_str().expect("apikey").to_owned();
    let rotated_items = app.item_count().await;
    assert_eq!(grant(&app, &entity, &with_token(&second_key, &token), "g-4").await, StatusCode::UNAUTHORIZED);
    assert_eq!(grant(&app, &entity, &with_token(&entity.apikey, "nonsense"), "g-5").await, StatusCode::UNAUTHORIZED);
    let session = app.token(&entity, "u-1").await;
    assert_eq!(
        grant(&app, &entity, &with_token(&entity.apikey, &session), "g-6").await,
        StatusCode::UNAUTHORIZED,
        "a user's session token is not an entity token"
    );
    let mut with_bad_session = with_token(&entity.apikey, &token);
    with_bad_session.extend([("userid".into(), "u-2".into()), ("token".into(), session.clone())]);
    assert_eq!(
        grant(&app, &entity, &with_bad_session, "g-7").await,
        StatusCode::UNAUTHORIZED,
        "a session sent beside an entity token must be valid too"
    );
    assert!(rotated_items > before, "the rotation wrote its key");
    assert_eq!(app.item_count().await, rotated_items, "refusals write nothing");
}

#[tokio::test]
async fn an_entity_token_stops_at_its_expiry_and_with_its_key() {
    let app = TestApp::with_cache_seconds(0).await;
    let entity = app.entity(&[]).await;
    let short = mint(&app, &entity, 60).await;
    let long = mint(&app, &entity, 3600).await;
    app.clock.advance_seconds(60);
    let expired = app
        .request(Method::POST, &entity.path("/users/u-1/buy-credits"))
        .headers(&with_token(&entity.apikey, &short))
        .json(json!({"credits": 5, "idempotencyKey": "g-1"}))
        .send()
        .await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert!(expired.error_message().contains("entity-authentication-token has expired"), "{:?}", expired.body);
    assert_eq!(grant(&app, &entity, &with_token(&entity.apikey, &long), "g-2").await, StatusCode::OK);

    let revoke = format!("/admin/entities/{}/api-keys/{}", entity.entity_id, entity.apikey);
    assert_eq!(app.request(Method::DELETE, &revoke).headers(&admin()).send().await.status, StatusCode::OK);
    assert_eq!(grant(&app, &entity, &with_token(&entity.apikey, &long), "g-3").await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn only_the_server_mints_entity_tokens_within_the_bounds() {
    let app = TestApp::start().await;
    let entity = app.entity(&["owner"]).await;
    let owner = app.session(&entity, "owner").await;
    let path = entity.path("/entity-tokens");
    let by_owner = app.request(Method::POST, &path).headers(&owner).json(json!({})).send().await;
    assert_eq!(by_owner.status, StatusCode::FORBIDDEN);
    for ttl in [59, 30 * 86_400 + 1] {
        let refused =
            app.request(Method::POST, &path).headers(&entity.server()).json(json!({"ttlSeconds": ttl})).send().await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert!(refused.error_message().contains("ttlSeconds"), "{:?}", refused.body);
    }
}
