//! Balances, spends, grants, purchases and history (Q3, Q4, Q10–Q13) over HTTP against the
//! emulator. The §3 invariant is checked after every test that changes credits.

use axum::http::{Method, StatusCode};
use integration_tests::fixtures::EntityFixture;
use integration_tests::{TestApp, TestResponse};
use serde_json::{Value, json};

async fn grant(app: &TestApp, entity: &EntityFixture, user: &str, credits: u64) -> TestResponse {
    let key = format!("grant-{}", ulid_like());
    app.request(Method::POST, &entity.path(&format!("/users/{user}/buy-credits")))
        .headers(&entity.server())
        .json(json!({"credits": credits, "reason": "welcome", "idempotencyKey": key}))
        .send()
        .await
}

fn ulid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst))
}

async fn decrement(app: &TestApp, entity: &EntityFixture, user: &str, body: Value) -> TestResponse {
    app.request(Method::POST, &entity.path(&format!("/users/{user}/decrement-credits")))
        .headers(&entity.server())
        .json(body)
        .send()
        .await
}

#[tokio::test]
async fn a_new_user_reads_as_zeros() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    let user = app.session(&entity, "u-new").await;
    let read = app.request(Method::GET, &entity.path("/users/u-new/credits")).headers(&user).send().await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(
        read.data(),
        &json!({"entityId": entity.entity_id, "userId": "u-new", "balance": 0, "held": 0, "available": 0,
                "lifetimePurchased": 0, "lifetimeGranted": 0, "lifetimeConsumed": 0, "lifetimeReversed": 0, "updatedAt": null})
    );
}

#[tokio::test]
async fn grant_then_spend_updates_the_account_and_the_ledger() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    let granted = grant(&app, &entity, "u-1", 50).await;
    assert_eq!(granted.status, StatusCode::OK, "{:?}", granted.body);
    let account = &granted.data()["account"];
    assert_eq!(
        (account["balance"].as_i64(), account["available"].as_i64(), account["lifetimeGranted"].as_u64()),
        (Some(50), Some(50), Some(50))
    );
    assert_eq!(granted.data()["entryId"].as_str().unwrap().len(), 26);

    let user = app.session(&entity, "u-1").await;
    let spent = app
        .request(Method::POST, &entity.path("/users/u-1/decrement-credits"))
        .headers(&user)
        .json(json!({"credits": 5, "reason": "one image"}))
        .send()
        .await;
    assert_eq!(spent.status, StatusCode::OK, "{:?}", spent.body);
    let account = &spent.data()["account"];
    assert_eq!(account["balance"], 45);
    assert_eq!(account["held"], 0);
    assert_eq!(account["available"], 45);
    assert_eq!(account["lifetimeConsumed"], 5);
    assert_eq!(account["userId"], "u-1");
    assert!(account["updatedAt"].as_str().unwrap().ends_with('Z'));

    let short = app
        .request(Method::POST, &entity.path("/users/u-1/decrement-credits"))
        .headers(&user)
        .json(json!({"credits": 46}))
        .send()
        .await;
    assert_eq!(short.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(short.error_code(), "INSUFFICIENT_CREDITS");
    assert!(short.error_message().contains("45 available"));

    let read = app.request(Method::GET, &entity.path("/users/u-1/credits")).headers(&user).send().await;
    assert_eq!(read.data()["balance"], 45);

    let ledger = app.assert_invariant(&entity.entity_id, "u-1").await;
    let kinds: Vec<_> = ledger.entries.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["decrement", "grant"]);
    assert_eq!(ledger.entries[0].entry_id, spent.data()["entryId"].as_str().unwrap());
    assert_eq!(ledger.entries[0].reason.as_deref(), Some("one image"));
}

#[tokio::test]
async fn purchase_credits_the_tier_and_counts_toward_q4() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    app.tier(
        &entity,
        json!({"creditTierId": "starter", "name": "Starter", "credits": 100, "bonusCredits": 20, "price": 999}),
    )
    .await;
    let path = entity.path("/users/u-1/purchase-credits");
    let bought = app
        .request(Method::POST, &path)
        .headers(&entity.server())
        .header("idempotency-key", "order-1")
        .json(json!({"creditTierId": "starter"}))
        .send()
        .await;
    assert_eq!(bought.status, StatusCode::OK, "{:?}", bought.body);
    assert_eq!(bought.data()["credited"], 120);
    assert_eq!(bought.data()["account"]["balance"], 120);
    assert_eq!(bought.data()["account"]["lifetimePurchased"], 120);
    let again = app
        .request(Method::POST, &path)
        .headers(&entity.server())
        .json(json!({"creditTierId": "starter", "idempotencyKey": "order-2"}))
        .send()
        .await;
    assert_eq!(again.data()["account"]["balance"], 240);

    let user = app.session(&entity, "u-1").await;
    let mine = app.request(Method::GET, &entity.path("/users/u-1/credit-tiers")).headers(&user).send().await;
    assert_eq!(mine.data()[0]["purchaseCount"], 2);
    assert!(mine.data()[0]["lastPurchasedAt"].as_str().unwrap().ends_with('Z'));
    let other =
        app.request(Method::GET, &entity.path("/users/u-2/credit-tiers")).headers(&entity.server()).send().await;
    assert_eq!(other.data()[0]["purchaseCount"], 0);

    let ledger = app.assert_invariant(&entity.entity_id, "u-1").await;
    assert_eq!(ledger.entries[0].credit_tier_id.as_deref(), Some("starter"));
    assert_eq!(ledger.entries[0].idempotency_key.as_deref(), Some("order-2"));

    let missing = app
        .request(Method::POST, &path)
        .headers(&entity.server())
        .json(json!({"creditTierId": "nope", "idempotencyKey": "o-3"}))
        .send()
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let archive = app
        .request(Method::PATCH, &entity.path("/credit-tiers/starter"))
        .headers(&entity.server())
        .json(json!({"status": "archived"}))
        .send()
        .await;
    assert_eq!(archive.status, StatusCode::OK);
    let archived = app
        .request(Method::POST, &path)
        .headers(&entity.server())
        .json(json!({"creditTierId": "starter", "idempotencyKey": "o-4"}))
        .send()
        .await;
    assert_eq!(archived.status, StatusCode::CONFLICT);
    assert_eq!(archived.error_code(), "TIER_ARCHIVED");
    assert_eq!(app.ledger(&entity.entity_id, "u-1").await.entries.len(), 2, "refusals write nothing");
}

#[tokio::test]
async fn history_is_newest_first_paginated_and_filterable() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    grant(&app, &entity, "u-1", 100).await;
    for credits in 1..=5 {
        assert_eq!(decrement(&app, &entity, "u-1", json!({"credits": credits})).await.status, StatusCode::OK);
    }
    let path = entity.path("/users/u-1/credit-history");
    let first = app.request(Method::GET, &format!("{path}?limit=4")).headers(&entity.server()).send().await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    let entries = first.data()["entries"].as_array().unwrap();
    let credits: Vec<_> = entries.iter().map(|e| e["credits"].as_i64().unwrap()).collect();
    assert_eq!(credits, [-5, -4, -3, -2]);
    assert_eq!(entries[0]["balanceAfter"], 85);
    assert_eq!(entries[0]["type"], "decrement");
    assert_eq!(entries[0]["heldAfter"], 0);
    assert!(entries[0].get("position").is_none());
    let cursor = first.data()["nextCursor"].as_str().unwrap();
    let second =
        app.request(Method::GET, &format!("{path}?limit=4&cursor={cursor}")).headers(&entity.server()).send().await;
    let credits: Vec<_> =
        second.data()["entries"].as_array().unwrap().iter().map(|e| e["credits"].as_i64().unwrap()).collect();
    assert_eq!(credits, [-1, 100]);
    assert_eq!(second.data()["nextCursor"], Value::Null);

    let grants = app.request(Method::GET, &format!("{path}?type=grant")).headers(&entity.server()).send().await;
    let grants = grants.data()["entries"].as_array().unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0]["reason"], "welcome");

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=x", "limit"),
        ("type=gift", "type"),
        ("cursor=abc", "cursor"),
        ("sort=asc", "sort"),
    ] {
        let bad = app.request(Method::GET, &format!("{path}?{query}")).headers(&entity.server()).send().await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(bad.error_message().contains(field), "{query}: {}", bad.error_message());
    }
    app.assert_invariant(&entity.entity_id, "u-1").await;
}

#[tokio::test]
async fn a_replayed_key_answers_the_same_and_a_reused_one_is_refused() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    grant(&app, &entity, "u-1", 10).await;
    let first = decrement(&app, &entity, "u-1", json!({"credits": 3, "idempotencyKey": "spend-1"})).await;
    let replay = decrement(&app, &entity, "u-1", json!({"credits": 3, "idempotencyKey": "spend-1"})).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(replay.status, StatusCode::OK);
    assert_eq!(replay.body, first.body, "the original response, same entryId");
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    let reused = decrement(&app, &entity, "u-1", json!({"credits": 4, "idempotencyKey": "spend-1"})).await;
    assert_eq!(reused.status, StatusCode::CONFLICT);
    assert_eq!(reused.error_code(), "IDEMPOTENCY_KEY_REUSED");
    // A replay still answers after the balance no longer covers the spend.
    decrement(&app, &entity, "u-1", json!({"credits": 7})).await;
    let late = decrement(&app, &entity, "u-1", json!({"credits": 3, "idempotencyKey": "spend-1"})).await;
    assert_eq!(late.body, first.body);
    let ledger = app.assert_invariant(&entity.entity_id, "u-1").await;
    assert_eq!(ledger.account.balance, 0);
    assert_eq!(ledger.entries.len(), 3);
}

#[tokio::test]
async fn batch_decrements_answer_per_item_in_order() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    grant(&app, &entity, "rich", 100).await;
    grant(&app, &entity, "poor", 1).await;
    let response = app
        .request(Method::POST, &entity.path("/users/decrement-credits"))
        .headers(&entity.server())
        .json(json!({"decrements": [
            {"userId": "rich", "credits": 10, "reason": "batch"},
            {"userId": "poor", "credits": 5},
            {"userId": "rich", "credits": 0},
            {"userId": "bad id", "credits": 1},
            {"userId": "rich", "credits": 15, "idempotencyKey": "b-1"},
        ]}))
        .send()
        .await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    let results = response.data()["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    assert_eq!((results[0]["userId"].as_str(), results[0]["ok"].as_bool()), (Some("rich"), Some(true)));
    assert_eq!(results[0]["account"]["balance"].as_i64().unwrap() % 5, 0);
    assert_eq!(results[0]["entryId"].as_str().unwrap().len(), 26);
    assert_eq!(
        (results[1]["ok"].as_bool(), results[1]["error"]["code"].as_str()),
        (Some(false), Some("INSUFFICIENT_CREDITS"))
    );
    assert_eq!(results[2]["error"]["code"], "VALIDATION_ERROR");
    assert!(results[2]["error"]["message"].as_str().unwrap().contains("credits"));
    assert!(results[3]["error"]["message"].as_str().unwrap().contains("userId"));
    assert_eq!(results[4]["ok"], true);

    let rich = app.assert_invariant(&entity.entity_id, "rich").await;
    assert_eq!(rich.account.balance, 75);
    let poor = app.assert_invariant(&entity.entity_id, "poor").await;
    assert_eq!((poor.account.balance, poor.entries.len()), (1, 1), "a failed item changes nothing");

    for body in [
        json!({"decrements": []}),
        json!({"decrements": (0..26).map(|_| json!({"userId": "rich", "credits": 1})).collect::<Vec<_>>()}),
        json!({}),
    ] {
        let bad = app
            .request(Method::POST, &entity.path("/users/decrement-credits"))
            .headers(&entity.server())
            .json(body)
            .send()
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert!(bad.error_message().contains("decrements"));
    }
    assert_eq!(app.assert_invariant(&entity.entity_id, "rich").await.account.balance, 75);
}

#[tokio::test]
async fn roles_and_other_users_are_kept_apart() {
    let app = TestApp::start().await;
    let entity = app.entity(&["owner"]).await;
    grant(&app, &entity, "u-1", 10).await;
    let foreign = app.entity(&[]).await;
    let before = app.item_count().await;
    let other = app.session(&entity, "u-2").await;
    let owner = app.session(&entity, "owner").await;
    let read = app.request(Method::GET, &entity.path("/users/u-1/credits")).headers(&other).send().await;
    assert_eq!(read.status, StatusCode::FORBIDDEN);
    let history = app.request(Method::GET, &entity.path("/users/u-1/credit-history")).headers(&other).send().await;
    assert_eq!(history.status, StatusCode::FORBIDDEN);
    let spend = app
        .request(Method::POST, &entity.path("/users/u-1/decrement-credits"))
        .headers(&other)
        .json(json!({"credits": 1}))
        .send()
        .await;
    assert_eq!(spend.status, StatusCode::FORBIDDEN);
    let owner_spend = app
        .request(Method::POST, &entity.path("/users/u-1/decrement-credits"))
        .headers(&owner)
        .json(json!({"credits": 1}))
        .send()
        .await;
    assert_eq!(owner_spend.status, StatusCode::FORBIDDEN, "owners read any account but spend only their own");
    let owner_read = app.request(Method::GET, &entity.path("/users/u-1/credits")).headers(&owner).send().await;
    assert_eq!(owner_read.status, StatusCode::OK);
    let me = app.session(&entity, "u-1").await;
    for (path, body) in [
        ("/users/u-1/buy-credits", json!({"credits": 5, "idempotencyKey": "k"})),
        ("/users/u-1/purchase-credits", json!({"creditTierId": "t", "idempotencyKey": "k"})),
        ("/users/decrement-credits", json!({"decrements": [{"userId": "u-1", "credits": 1}]})),
    ] {
        for headers in [&me, &owner] {
            let response =
                app.request(Method::POST, &entity.path(path)).headers(headers).json(body.clone()).send().await;
            assert_eq!(response.status, StatusCode::FORBIDDEN, "{path}");
            assert!(response.error_message().contains("apisecret"));
        }
    }
    let cross = app.request(Method::GET, &entity.path("/users/u-1/credits")).headers(&foreign.server()).send().await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    assert_eq!(app.item_count().await, before, "refusals write nothing");
}

#[tokio::test]
async fn a_batch_under_one_idempotency_key_charges_once() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    grant(&app, &entity, "u-b", 20).await;
    let batch = |key: &str, credits: u64| {
        app.request(Method::POST, &entity.path("/users/decrement-credits"))
            .headers(&entity.server())
            .header("idempotency-key", key)
            .json(json!({"decrements": [{"userId": "u-b", "credits": credits}, {"credits": 1}]}))
            .send()
    };
    let first = batch("batch-1", 3).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    let results = first.data()["results"].as_array().unwrap();
    assert_eq!((results[0]["ok"].as_bool(), results[0]["account"]["balance"].as_i64()), (Some(true), Some(17)));
    assert_eq!((results[1]["ok"].as_bool(), &results[1]["userId"]), (Some(false), &Value::Null), "no userId, no \"\"");
    for _ in 0..2 {
        let again = batch("batch-1", 3).await;
        assert_eq!((again.status, &again.body), (StatusCode::OK, &first.body));
        assert_eq!(again.headers["idempotent-replayed"], "true");
    }
    let reused = batch("batch-1", 4).await;
    assert_eq!((reused.status, reused.error_code()), (StatusCode::CONFLICT, "IDEMPOTENCY_KEY_REUSED"));
    for bad in [String::new(), "k".repeat(256)] {
        let refused = batch(&bad, 3).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "key of {} chars", bad.len());
        assert!(refused.error_message().contains("Idempotency-Key"));
    }
    let ledger = app.assert_invariant(&entity.entity_id, "u-b").await;
    assert_eq!((ledger.account.balance, ledger.entries.len()), (17, 2));
    assert_eq!(ledger.entries[0].idempotency_key.as_deref(), Some("batch-1#0"), "items carry the batch's key");
}

#[tokio::test]
async fn a_warm_spend_is_one_store_request_and_every_few_also_move_the_journal() {
    let app = TestApp::start().await;
    let entity = app.funded(100).await;
    // Warm: caches filled, the journal moved out by a history read, then one spend, so the
    // process knows the journal exactly (one record).
    assert_eq!(decrement(&app, &entity, "u-1", json!({"credits": 1})).await.status, StatusCode::OK);
    let history =
        app.request(Method::GET, &entity.path("/users/u-1/credit-history")).headers(&entity.server()).send().await;
    assert_eq!(history.status, StatusCode::OK);
    assert_eq!(decrement(&app, &entity, "u-1", json!({"credits": 1})).await.status, StatusCode::OK);

    let recorder = &app.function("credits").recorder;
    let before = recorder.round_trips();
    for _ in 0..16 {
        assert_eq!(decrement(&app, &entity, "u-1", json!({"credits": 1})).await.status, StatusCode::OK);
    }
    // Records 2..=17: every `MOVE_EVERY`-th write moves the journal out (keyless spends keep
    // no idempotency record: a put of each record's entry, one by one, then one update
    // dropping them); every other spend is its one UpdateItem.
    let move_every = shared::accounts::MOVE_EVERY as u64;
    assert_eq!(recorder.round_trips() - before, 16 + (16 / move_every) * (move_every + 1));
    assert_eq!(app.assert_invariant(&entity.entity_id, "u-1").await.account.balance, 100 - 18);
}
