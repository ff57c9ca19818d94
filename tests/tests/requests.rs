//! What every route does with what it is sent: one reading of a body (no duplicate keys, no
//! nulls), every answer in the §1 envelope (bad query strings, unmatched paths), and
//! idempotency keys checked wherever they are accepted.

use axum::http::{Method, StatusCode};
use integration_tests::TestApp;
use serde_json::json;

#[tokio::test]
async fn duplicate_keys_are_refused_at_every_level_naming_the_key() {
    let app = TestApp::start().await;
    let entity = app.funded(10).await;
    let before = app.item_count().await;
    let spend = app
        .request(Method::POST, &entity.path("/users/u-1/decrement-credits"))
        .headers(&entity.server())
        .raw(r#"{"credits":1,"credits":1000}"#)
        .send()
        .await;
    assert_eq!((spend.status, spend.error_message()), (StatusCode::BAD_REQUEST, "duplicate key credits"));
    let nested = format!(
        r#"{{"id":"pm_card_visa","product":{{"creditTierId":"t"}},"info":{{"userId":"u-1","entityId":"{0}","entityId":"{0}"}}}}"#,
        entity.entity_id
    );
    let pay = app.request(Method::POST, "/api/payment/pay").headers(&entity.server()).raw(nested).send().await;
    assert_eq!((pay.status, pay.error_message()), (StatusCode::BAD_REQUEST, "duplicate key info.entityId"));
    assert_eq!(app.item_count().await, before, "nothing written");
    assert_eq!(app.assert_invariant(&entity.entity_id, "u-1").await.account.balance, 10);
}

#[tokio::test]
async fn null_is_never_taken_as_absent() {
    let app = TestApp::start().await;
    let entity = app.funded(10).await;
    let cases = [
        ("/users/u-1/decrement-credits", json!({"credits": 1, "reason": null}), "reason"),
        ("/users/u-1/create-payment-intent", json!({"creditTierId": "t", "cardData": null}), "cardData"),
        (
            "/users/u-1/create-payment-intent",
            json!({"creditTierId": "t", "cardData": {"email": null}}),
            "cardData.email",
        ),
    ];
    for (path, body, field) in cases {
        let response = app.request(Method::POST, &entity.path(path)).headers(&entity.server()).json(body).send().await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(response.error_message(), format!("{field} must not be null: leave the field out instead"));
    }
    assert_eq!(app.assert_invariant(&entity.entity_id, "u-1").await.account.balance, 10);
}

#[tokio::test]
async fn bad_query_strings_and_unknown_paths_answer_in_the_envelope() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    let repeated = app
        .request(Method::GET, &entity.path("/credit-tiers?includeArchived=true&includeArchived=false"))
        .headers(&entity.server())
        .send()
        .await;
    assert_eq!((repeated.status, repeated.error_code()), (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"));
    assert!(repeated.error_message().contains("includeArchived"), "{}", repeated.error_message());
    assert_eq!(repeated.headers["content-type"], "application/json");
    for (method, path) in [(Method::GET, "/api/nowhere"), (Method::POST, "/nothing/here"), (Method::GET, "/")] {
        let response = app.request(method, path).send().await;
        assert_eq!((response.status, response.error_code()), (StatusCode::NOT_FOUND, "NOT_FOUND"), "{path}");
        assert_eq!(response.body["success"], false);
    }
}

#[tokio::test]
async fn token_minting_checks_the_idempotency_key_like_every_mutation() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    for key in [String::new(), "k".repeat(256), "tab\tkey".to_owned()] {
        let response = app
            .request(Method::POST, &entity.path("/users/u-1/token"))
            .headers(&entity.server())
            .header("idempotency-key", &key)
            .json(json!({}))
            .send()
            .await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "key {key:?}");
        assert!(response.error_message().contains("Idempotency-Key"));
    }
}
