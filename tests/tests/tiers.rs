//! Credit tier routes (Q1, Q2, Q4, Q8, Q9) over HTTP against the emulator.

use axum::http::{Method, StatusCode};
use integration_tests::TestApp;
use serde_json::{Value, json};

fn starter() -> Value {
    json!({"name": "Starter", "credits": 100, "bonusCredits": 20, "price": 999})
}

#[tokio::test]
async fn owner_creates_a_tier_and_users_list_it() {
    let app = TestApp::start().await;
    let entity = app.entity(&["owner-1"]).await;
    let owner = app.session(&entity, "owner-1").await;
    let created = app.request(Method::POST, &entity.path("/credit-tiers")).headers(&owner).json(starter()).send().await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let tier = created.data();
    let id = tier["creditTierId"].as_str().unwrap();
    assert!(id.starts_with("ct-"));
    assert_eq!(tier["entityId"], entity.entity_id.as_str());
    assert_eq!(tier["name"], "Starter");
    assert_eq!(tier["credits"], 100);
    assert_eq!(tier["bonusCredits"], 20);
    assert_eq!(tier["price"], 999);
    assert_eq!(tier["currency"], "usd");
    assert_eq!(tier["recurring"], "none");
    assert_eq!(tier["status"], "active");
    assert_eq!(tier["version"], 1);
    assert_eq!(tier["createdAt"], tier["updatedAt"]);
    assert!(tier["createdAt"].as_str().unwrap().ends_with('Z'));

    let user = app.session(&entity, "u-9").await;
    let listed = app.request(Method::GET, &entity.path("/credit-tiers")).headers(&user).send().await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.data(), &json!([tier]));

    let one = app.request(Method::GET, &entity.path(&format!("/credit-tiers/{id}"))).headers(&user).send().await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.data(), tier);

    let mine = app.request(Method::GET, &entity.path("/users/u-9/credit-tiers")).headers(&user).send().await;
    assert_eq!(mine.status, StatusCode::OK);
    let view = &mine.data()[0];
    assert_eq!(view["creditTierId"], id);
    assert_eq!(view["price"], 999);
    assert_eq!(view["purchaseCount"], 0);
    assert_eq!(view["lastPurchasedAt"], Value::Null);
    assert_eq!(view["subscription"], Value::Null);
}

#[tokio::test]
async fn list_is_sorted_by_price_then_name_and_hides_archived() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    app.tier(
        &entity,
        json!({"creditTierId": "gold", "name": "Gold", "credits": 1000, "price": 5000, "recurring": "month"}),
    )
    .await;
    app.tier(&entity, json!({"creditTierId": "b", "name": "B", "credits": 10, "price": 100})).await;
    app.tier(&entity, json!({"creditTierId": "a", "name": "A", "credits": 10, "price": 100})).await;
    app.tier(
        &entity,
        json!({"creditTierId": "free", "name": "Free", "credits": 0, "bonusCredits": 5, "price": 0, "currency": "eur"}),
    )
    .await;
    let archive = app
        .request(Method::PATCH, &entity.path("/credit-tiers/b"))
        .headers(&entity.server())
        .json(json!({"status": "archived"}))
        .send()
        .await;
    assert_eq!(archive.status, StatusCode::OK);
    assert_eq!(archive.data()["status"], "archived");

    let ids = |body: &Value| {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["creditTierId"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let user = app.session(&entity, "u-1").await;
    let listed = app.request(Method::GET, &entity.path("/credit-tiers")).headers(&user).send().await;
    assert_eq!(ids(&listed.body), ["free", "a", "gold"]);
    let all = app
        .request(Method::GET, &entity.path("/credit-tiers?includeArchived=true"))
        .headers(&entity.server())
        .send()
        .await;
    assert_eq!(ids(&all.body), ["free", "a", "b", "gold"]);
    let forbidden =
        app.request(Method::GET, &entity.path("/credit-tiers?includeArchived=true")).headers(&user).send().await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    let bad = app
        .request(Method::GET, &entity.path("/credit-tiers?includeArchived=yes"))
        .headers(&entity.server())
        .send()
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.error_message().contains("includeArchived"));
    let mine = app.request(Method::GET, &entity.path("/users/u-1/credit-tiers")).headers(&user).send().await;
    assert_eq!(ids(&mine.body), ["free", "a", "gold"]);
}

#[tokio::test]
async fn update_bumps_the_version_and_refuses_stale_ones() {
    let app = TestApp::start().await;
    let entity = app.entity(&["o"]).await;
    app.tier(&entity, json!({"creditTierId": "t1", "name": "T", "credits": 10, "price": 100})).await;
    let path = entity.path("/credit-tiers/t1");
    let owner = app.session(&entity, "o").await;
    let patched = app
        .request(Method::PATCH, &path)
        .headers(&owner)
        .json(json!({"price": 150, "name": "T+", "bonusCredits": 5, "version": 1, "creditTierId": "t1"}))
        .send()
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
    let tier = patched.data();
    assert_eq!(
        (tier["price"].as_u64(), tier["name"].as_str(), tier["bonusCredits"].as_u64(), tier["version"].as_u64()),
        (Some(150), Some("T+"), Some(5), Some(2))
    );
    assert_eq!(tier["credits"], 10);

    let stale = app.request(Method::PATCH, &path).headers(&owner).json(json!({"price": 1, "version": 1})).send().await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert_eq!(stale.error_code(), "VERSION_CONFLICT");
    let read = app.request(Method::GET, &path).headers(&owner).send().await;
    assert_eq!(read.data()["price"], 150, "a stale update changes nothing");

    let missing = app
        .request(Method::PATCH, &entity.path("/credit-tiers/nope"))
        .headers(&owner)
        .json(json!({"price": 1}))
        .send()
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let absent = app.request(Method::GET, &entity.path("/credit-tiers/nope")).headers(&owner).send().await;
    assert_eq!(absent.status, StatusCode::NOT_FOUND);
    assert_eq!(absent.error_code(), "NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_of_one_version_let_exactly_one_win() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    app.tier(&entity, json!({"creditTierId": "t1", "name": "T", "credits": 10, "price": 100})).await;
    let path = entity.path("/credit-tiers/t1");
    let server = entity.server();
    let updates = (0..8).map(|i| {
        app.request(Method::PATCH, &path).headers(&server).json(json!({"price": 200 + i, "version": 1})).send()
    });
    let results = integration_tests::concurrently(updates).await;
    let wins = results.iter().filter(|r| r.status == StatusCode::OK).count();
    let conflicts = results.iter().filter(|r| r.error_code() == "VERSION_CONFLICT").count();
    assert_eq!((wins, conflicts), (1, 7));
    let read = app.request(Method::GET, &path).headers(&server).send().await;
    assert_eq!(read.data()["version"], 2);
}

#[tokio::test]
async fn every_invalid_tier_field_is_refused_by_name_and_nothing_is_written() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    app.tier(&entity, json!({"creditTierId": "taken", "name": "T", "credits": 1, "price": 1})).await;
    let before = app.item_count().await;
    let base =
        || json!({"name": "T", "credits": 10, "bonusCredits": 0, "price": 100, "currency": "usd", "recurring": "none"});
    let with = |field: &str, value: Value| {
        let mut body = base();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = base();
        body.as_object_mut().unwrap().remove(field);
        body
    };
    let cases: Vec<(Value, &str)> = vec![
        (without("name"), "name"),
        (without("credits"), "credits"),
        (without("price"), "price"),
        (with("name", json!("")), "name"),
        (with("name", json!("x".repeat(101))), "name"),
        (with("name", json!(5)), "name"),
        (with("credits", json!("10")), "credits"),
        (with("credits", json!(1.5)), "credits"),
        (with("credits", json!(-1)), "credits"),
        (with("credits", json!(1_000_000_000_001u64)), "credits"),
        (with("bonusCredits", json!(2.5)), "bonusCredits"),
        (with("bonusCredits", json!(-3)), "bonusCredits"),
        (with("price", json!(9.99)), "price"),
        (with("price", json!(-1)), "price"),
        (with("price", json!("999")), "price"),
        (with("currency", json!("USD")), "currency"),
        (with("currency", json!("dollars")), "currency"),
        (with("recurring", json!("weekly")), "recurring"),
        (with("creditTierId", json!("has space")), "creditTierId"),
        (with("creditTierId", json!("x".repeat(65))), "creditTierId"),
        (with("colour", json!("red")), "colour"),
        (json!({"name": "T", "credits": 0, "bonusCredits": 0, "price": 1}), "credits + bonusCredits"),
    ];
    for (body, field) in cases {
        let response = app
            .request(Method::POST, &entity.path("/credit-tiers"))
            .headers(&entity.server())
            .json(body.clone())
            .send()
            .await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(response.error_code(), "VALIDATION_ERROR");
        assert!(response.error_message().contains(field), "{body} → {}", response.error_message());
    }
    let duplicate = app
        .request(Method::POST, &entity.path("/credit-tiers"))
        .headers(&entity.server())
        .json(with("creditTierId", json!("taken")))
        .send()
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    assert_eq!(duplicate.error_code(), "ALREADY_EXISTS");
    assert!(duplicate.error_message().contains("creditTierId"));

    let patch_cases: Vec<(Value, &str)> = vec![
        (json!({}), "at least one"),
        (json!({"price": -5}), "price"),
        (json!({"credits": 0, "bonusCredits": 0}), "credits + bonusCredits"),
        (json!({"status": "deleted"}), "status"),
        (json!({"creditTierId": "other", "price": 5}), "creditTierId"),
        (json!({"version": "1", "price": 5}), "version"),
        (json!({"unknown": 1}), "unknown"),
    ];
    for (body, field) in patch_cases {
        let response = app
            .request(Method::PATCH, &entity.path("/credit-tiers/taken"))
            .headers(&entity.server())
            .json(body.clone())
            .send()
            .await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(response.error_message().contains(field), "{body} → {}", response.error_message());
    }
    assert_eq!(app.item_count().await, before, "rejected requests write nothing");
}

#[tokio::test]
async fn malformed_and_oversized_bodies_are_refused() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    let before = app.item_count().await;
    let malformed = app
        .request(Method::POST, &entity.path("/credit-tiers"))
        .headers(&entity.server())
        .raw("{\"name\": ")
        .send()
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert!(malformed.error_message().contains("JSON"));
    let huge = json!({"name": "x".repeat(70 * 1024), "credits": 1, "price": 1});
    let too_large =
        app.request(Method::POST, &entity.path("/credit-tiers")).headers(&entity.server()).json(huge).send().await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_large.error_code(), "PAYLOAD_TOO_LARGE");
    assert_eq!(app.item_count().await, before);
}

#[tokio::test]
async fn tier_creation_replays_under_the_same_key() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    let send = |body| {
        app.request(Method::POST, &entity.path("/credit-tiers"))
            .headers(&entity.server())
            .header("idempotency-key", "tier-1")
            .json(body)
            .send()
    };
    let first = send(starter()).await;
    let again = send(starter()).await;
    assert_eq!((first.status, again.status), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(first.data()["creditTierId"], again.data()["creditTierId"]);
    let listed = app.request(Method::GET, &entity.path("/credit-tiers")).headers(&entity.server()).send().await;
    assert_eq!(listed.data().as_array().unwrap().len(), 1, "one effect");
    let reused = send(json!({"name": "Other", "credits": 1, "price": 1})).await;
    assert_eq!(reused.error_code(), "IDEMPOTENCY_KEY_REUSED");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_envelope() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    let missing = app.request(Method::GET, "/api/nothing/here").headers(&entity.server()).send().await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), "NOT_FOUND");
    let wrong_method =
        app.request(Method::DELETE, &entity.path("/credit-tiers")).headers(&entity.server()).send().await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.error_code(), "METHOD_NOT_ALLOWED");
    assert_eq!(wrong_method.body["success"], false);
}
