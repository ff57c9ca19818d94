//! The entity's credit pool: one real account per entity with the user accounts' ledger,
//! holds, idempotency and exactness; who may spend it; entries that name who acted; payments
//! whose beneficiary is the pool.

use axum::http::{Method, StatusCode};
use integration_tests::fixtures::{EntityFixture, Headers};
use integration_tests::{TestApp, TestResponse, concurrently};
use serde_json::{Value, json};
use shared::accounts::POOL;

/// Grants `credits` to the pool as the entity's server.
async fn fund(app: &TestApp, entity: &EntityFixture, credits: u64) {
    let response = app
        .request(Method::POST, &entity.path("/pool/buy-credits"))
        .headers(&entity.server())
        .json(json!({"credits": credits, "idempotencyKey": format!("fund-{}", ulid::Ulid::new())}))
        .send()
        .await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
}

async fn spend(app: &TestApp, entity: &EntityFixture, headers: &Headers, body: Value) -> TestResponse {
    app.request(Method::POST, &entity.path("/pool/decrement-credits")).headers(headers).json(body).send().await
}

async fn open_pool(app: &TestApp, entity: &EntityFixture, open: bool) {
    let set = app
        .request(Method::PUT, &entity.path("/settings"))
        .headers(&entity.server())
        .json(json!({"poolOpenToUsers": open}))
        .send()
        .await;
    assert_eq!(set.status, StatusCode::OK, "{:?}", set.body);
    assert_eq!(set.data()["poolOpenToUsers"], open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_spends_by_many_users_never_oversell_the_pool_and_name_their_spender() {
    let app = TestApp::with_cache_seconds(0).await;
    let entity = app.entity(&["owner-1", "owner-2"]).await;
    open_pool(&app, &entity, true).await;
    fund(&app, &entity, 70).await;
    let spenders = ["owner-1", "owner-2", "plain-1", "plain-2"];
    let mut sessions = Vec::new();
    for user in spenders {
        sessions.push((user, app.session(&entity, user).await));
    }
    let requests = (0..120).map(|i| {
        let (user, headers) = &sessions[i % sessions.len()];
        let reason = format!("by {user}");
        app.request(Method::POST, &entity.path("/pool/decrement-credits"))
            .headers(headers)
            .json(json!({"credits": 1, "reason": reason}))
            .send()
    });
    let responses = concurrently(requests).await;
    let count = |status: StatusCode| responses.iter().filter(|r| r.status == status).count();
    assert_eq!((count(StatusCode::OK), count(StatusCode::PAYMENT_REQUIRED)), (70, 50));
    let ledger = app.assert_invariant(&entity.entity_id, POOL).await;
    assert_eq!(ledger.account.balance, 0);
    let spends: Vec<_> = ledger.entries.iter().filter(|e| e.kind.as_str() == "decrement").collect();
    assert_eq!(spends.len(), 70);
    for entry in spends {
        let by = entry.by_user_id.as_deref().expect("a spend names its spender");
        assert_eq!(entry.reason.as_deref(), Some(format!("by {by}").as_str()));
    }
    let grant = ledger.entries.iter().find(|e| e.kind.as_str() == "grant").expect("the funding grant");
    assert_eq!(grant.by_user_id, None, "the server granted as itself");
}

#[tokio::test]
async fn a_plain_user_may_spend_the_pool_only_once_the_entity_opens_it() {
    let app = TestApp::with_cache_seconds(0).await;
    let entity = app.entity(&["owner-1"]).await;
    fund(&app, &entity, 10).await;
    let plain = app.session(&entity, "plain-1").await;
    let before = app.ledger(&entity.entity_id, POOL).await.entries.len();

    let settings = app.request(Method::GET, &entity.path("/settings")).headers(&entity.server()).send().await;
    assert_eq!(settings.data(), &json!({"poolOpenToUsers": false, "lowBalanceThreshold": 0}));
    for (method, path) in [
        (Method::GET, "/pool/credits"),
        (Method::GET, "/pool/credit-history"),
        (Method::POST, "/pool/decrement-credits"),
        (Method::POST, "/pool/holds"),
    ] {
        let request = app.request(method.clone(), &entity.path(path)).headers(&plain);
        let response = if method == Method::POST { request.json(json!({"credits": 1})) } else { request }.send().await;
        assert_eq!(response.status, StatusCode::FORBIDDEN, "{path}: {:?}", response.body);
        assert_eq!(response.error_code(), "FORBIDDEN");
    }
    assert_eq!(app.ledger(&entity.entity_id, POOL).await.entries.len(), before, "nothing written");
    // Only the server changes settings, and only the named ones.
    let by_owner = app
        .request(Method::PUT, &entity.path("/settings"))
        .headers(&app.session(&entity, "owner-1").await)
        .json(json!({"poolOpenToUsers": true}))
        .send()
        .await;
    assert_eq!(by_owner.status, StatusCode::FORBIDDEN);
    let unknown = app
        .request(Method::PUT, &entity.path("/settings"))
        .headers(&entity.server())
        .json(json!({"poolOpenToUsers": true, "other": 1}))
        .send()
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(unknown.error_message().contains("other"), "{}", unknown.error_message());

    open_pool(&app, &entity, true).await;
    let spent = spend(&app, &entity, &plain, json!({"credits": 3})).await;
    assert_eq!(spent.status, StatusCode::OK, "{:?}", spent.body);
    assert_eq!(spent.data()["account"]["balance"], 7);
    // A session is always its own byUserId.
    let impersonating = spend(&app, &entity, &plain, json!({"credits": 1, "byUserId": "owner-1"})).await;
    assert_eq!(impersonating.status, StatusCode::FORBIDDEN);

    open_pool(&app, &entity, false).await;
    let closed = spend(&app, &entity, &plain, json!({"credits": 1})).await;
    assert_eq!(closed.status, StatusCode::FORBIDDEN);
    let ledger = app.assert_invariant(&entity.entity_id, POOL).await;
    assert_eq!(ledger.account.balance, 7);
    assert_eq!(ledger.entries[0].by_user_id.as_deref(), Some("plain-1"));
}

#[tokio::test]
async fn holds_replays_and_history_on_the_pool() {
    let app = TestApp::start().await;
    let entity = app.entity(&["owner-1"]).await;
    fund(&app, &entity, 100).await;
    let owner = app.session(&entity, "owner-1").await;

    let opened = app
        .request(Method::POST, &entity.path("/pool/holds"))
        .headers(&owner)
        .json(json!({"credits": 30, "reason": "job"}))
        .send()
        .await;
    assert_eq!(opened.status, StatusCode::CREATED, "{:?}", opened.body);
    assert_eq!(
        (opened.data()["account"]["held"].as_u64(), opened.data()["account"]["available"].as_i64()),
        (Some(30), Some(70))
    );
    let hold = opened.data()["holdId"].as_str().unwrap().to_owned();
    let read = app.request(Method::GET, &entity.path(&format!("/pool/holds/{hold}"))).headers(&owner).send().await;
    assert_eq!(read.data()["status"], "active");
    let captured = app
        .request(Method::POST, &entity.path(&format!("/pool/holds/{hold}/capture")))
        .headers(&entity.server())
        .json(json!({"credits": 20}))
        .send()
        .await;
    assert_eq!(captured.status, StatusCode::OK, "{:?}", captured.body);
    assert_eq!((captured.data()["captured"].as_u64(), captured.data()["released"].as_u64()), (Some(20), Some(10)));

    let second =
        app.request(Method::POST, &entity.path("/pool/holds")).headers(&owner).json(json!({"credits": 5})).send().await;
    let second = second.data()["holdId"].as_str().unwrap().to_owned();
    let released = app
        .request(Method::POST, &entity.path(&format!("/pool/holds/{second}/release")))
        .headers(&owner)
        .json(json!({}))
        .send()
        .await;
    assert_eq!(released.status, StatusCode::OK, "{:?}", released.body);
    assert_eq!(released.data()["status"], "released");

    // The server names who it spends for; a replay answers the same and spends once.
    let body = json!({"credits": 4, "byUserId": "worker-9", "idempotencyKey": "pool-spend-1"});
    let first = spend(&app, &entity, &entity.server(), body.clone()).await;
    let again = spend(&app, &entity, &entity.server(), body).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!(again.data()["entryId"], first.data()["entryId"]);
    assert_eq!(again.data()["account"]["balance"], 76);
    let reused = spend(&app, &entity, &entity.server(), json!({"credits": 5, "idempotencyKey": "pool-spend-1"})).await;
    assert_eq!(reused.error_code(), "IDEMPOTENCY_KEY_REUSED");

    let balance = app.request(Method::GET, &entity.path("/pool/credits")).headers(&owner).send().await;
    assert_eq!((balance.data()["balance"].as_i64(), balance.data()["held"].as_u64()), (Some(76), Some(0)));
    let history = app.request(Method::GET, &entity.path("/pool/credit-history")).headers(&owner).send().await;
    assert_eq!(history.status, StatusCode::OK, "{:?}", history.body);
    let entries = history.data()["entries"].as_array().unwrap();
    let seen: Vec<(&str, &Value)> = entries.iter().map(|e| (e["type"].as_str().unwrap(), &e["byUserId"])).collect();
    assert_eq!(
        seen,
        [
            ("decrement", &json!("worker-9")),
            ("release", &json!("owner-1")),
            ("hold", &json!("owner-1")),
            // A partial capture releases the rest in the same write.
            ("release", &Value::Null),
            ("capture", &Value::Null),
            ("hold", &json!("owner-1")),
            ("grant", &Value::Null),
        ]
    );
    app.assert_invariant(&entity.entity_id, POOL).await;
    // The pool is its own account: no user's account moved.
    assert_eq!(app.ledger(&entity.entity_id, "owner-1").await.entries.len(), 0);
}

const TIER: &str = "pool-pack";

async fn pool_intent(app: &TestApp, entity: &EntityFixture, buyer: &Headers, user: &str) -> String {
    let created = app
        .request(Method::POST, &entity.path(&format!("/users/{user}/create-payment-intent")))
        .headers(buyer)
        .json(json!({"creditTierId": TIER, "beneficiary": "pool"}))
        .send()
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let intent = created.data()["paymentIntentId"].as_str().unwrap().to_owned();
    let confirmed =
        app.stripe_api("POST", &format!("/v1/payment_intents/{intent}/confirm"), "payment_method=pm_card_visa");
    assert_eq!(confirmed["status"], "succeeded");
    assert_eq!(confirmed["metadata"]["beneficiary"], "pool");
    intent
}

async fn approve(app: &TestApp, entity: &EntityFixture, headers: &Headers, user: &str, body: Value) -> TestResponse {
    app.request(Method::POST, &entity.path(&format!("/users/{user}/approve-payment")))
        .headers(headers)
        .json(body)
        .send()
        .await
}

#[tokio::test]
async fn a_payment_into_the_pool_credits_the_pool_once_and_never_the_buyer() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    app.tier(
        &entity,
        json!({"creditTierId": TIER, "name": "Pool pack", "credits": 100, "bonusCredits": 20, "price": 999}),
    )
    .await;
    // Buying into the pool is open to any user, even with the pool closed to them.
    let buyer = app.session(&entity, "buyer-1").await;
    let intent = pool_intent(&app, &entity, &buyer, "buyer-1").await;

    let on_user = approve(&app, &entity, &buyer, "buyer-1", json!({"paymentIntentId": intent})).await;
    assert_eq!(on_user.status, StatusCode::CONFLICT, "{:?}", on_user.body);
    assert_eq!(on_user.error_code(), "WRONG_BENEFICIARY");
    assert!(on_user.error_message().contains("pool"), "{}", on_user.error_message());
    let by_other =
        approve(&app, &entity, &entity.server(), "buyer-2", json!({"paymentIntentId": intent, "beneficiary": "pool"}))
            .await;
    assert_eq!(by_other.status, StatusCode::NOT_FOUND);

    for already in [false, true] {
        let approved =
            approve(&app, &entity, &buyer, "buyer-1", json!({"paymentIntentId": intent, "beneficiary": "pool"})).await;
        assert_eq!(approved.status, StatusCode::OK, "{:?}", approved.body);
        assert_eq!(
            (approved.data()["credited"].as_u64(), approved.data()["alreadyCredited"].as_bool()),
            (Some(120), Some(already))
        );
        assert_eq!(approved.data()["account"]["balance"], 120);
    }
    // The webhook for the same intent shares the guard.
    let payload = app
        .stripe_events("payment_intent.succeeded")
        .into_iter()
        .find(|e| e["data"]["object"]["id"] == intent.as_str())
        .expect("the succeeded event")
        .to_string();
    assert_eq!(app.deliver(&payload).await.status, StatusCode::OK);

    let ledger = app.assert_invariant(&entity.entity_id, POOL).await;
    assert_eq!((ledger.account.balance, ledger.entries.len()), (120, 1));
    let entry = &ledger.entries[0];
    assert_eq!((entry.kind.as_str(), entry.by_user_id.as_deref()), ("purchase", Some("buyer-1")));
    assert_eq!(entry.payment_intent_id.as_deref(), Some(intent.as_str()));
    assert_eq!(app.ledger(&entity.entity_id, "buyer-1").await.entries.len(), 0, "the buyer's own account is untouched");

    // A user's intent through the pool's approve is refused the other way round.
    let created = app
        .request(Method::POST, &entity.path("/users/buyer-1/create-payment-intent"))
        .headers(&buyer)
        .json(json!({"creditTierId": TIER}))
        .send()
        .await;
    let own = created.data()["paymentIntentId"].as_str().unwrap().to_owned();
    let wrong = approve(&app, &entity, &buyer, "buyer-1", json!({"paymentIntentId": own, "beneficiary": "pool"})).await;
    assert_eq!(wrong.error_code(), "WRONG_BENEFICIARY");
    assert!(wrong.error_message().contains("user"), "{}", wrong.error_message());
}

#[tokio::test]
async fn the_webhook_alone_credits_a_pool_payment_to_the_pool() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    app.tier(
        &entity,
        json!({"creditTierId": TIER, "name": "Pool pack", "credits": 50, "bonusCredits": 0, "price": 500}),
    )
    .await;
    let intent = pool_intent(&app, &entity, &entity.server(), "buyer-3").await;
    let payload = app
        .stripe_events("payment_intent.succeeded")
        .into_iter()
        .find(|e| e["data"]["object"]["id"] == intent.as_str())
        .expect("the succeeded event")
        .to_string();
    let responses = concurrently((0..3).map(|_| app.deliver(&payload))).await;
    assert!(responses.iter().all(|r| r.status == StatusCode::OK));
    let ledger = app.assert_invariant(&entity.entity_id, POOL).await;
    assert_eq!((ledger.account.balance, ledger.entries.len()), (50, 1));
    assert_eq!(ledger.entries[0].by_user_id.as_deref(), Some("buyer-3"));
    assert_eq!(app.ledger(&entity.entity_id, "buyer-3").await.entries.len(), 0);

    // A refund takes back from the account the payment credited: the pool.
    app.stripe_api("POST", "/v1/refunds", &format!("payment_intent={intent}&amount=200"));
    let refunded = app
        .stripe_events("charge.refunded")
        .into_iter()
        .find(|e| e["data"]["object"]["payment_intent"] == intent.as_str())
        .expect("the refund event")
        .to_string();
    assert_eq!(app.deliver(&refunded).await.status, StatusCode::OK);
    let ledger = app.assert_invariant(&entity.entity_id, POOL).await;
    assert_eq!(ledger.account.balance, 30, "40% of 50 reversed");
    assert_eq!(
        (ledger.entries[0].kind.as_str(), ledger.entries[0].by_user_id.as_deref()),
        ("reversal", Some("buyer-3"))
    );
    assert_eq!(app.ledger(&entity.entity_id, "buyer-3").await.entries.len(), 0);
}
