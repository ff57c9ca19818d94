//! Holds over HTTP: reserve, capture or release, expiry without a sweeper, and races.

use axum::http::{Method, StatusCode};
use integration_tests::fixtures::EntityFixture;
use integration_tests::{TestApp, TestResponse, concurrently};
use serde_json::{Value, json};

async fn hold(app: &TestApp, entity: &EntityFixture, body: Value) -> TestResponse {
    app.request(Method::POST, &entity.path("/users/u-1/holds")).headers(&entity.server()).json(body).send().await
}

async fn settle(app: &TestApp, entity: &EntityFixture, hold_id: &str, action: &str, body: Value) -> TestResponse {
    app.request(Method::POST, &entity.path(&format!("/users/u-1/holds/{hold_id}/{action}")))
        .headers(&entity.server())
        .json(body)
        .send()
        .await
}

#[tokio::test]
async fn hold_capture_part_release_the_rest() {
    let app = TestApp::start().await;
    let entity = app.funded(100).await;
    let opened = hold(&app, &entity, json!({"credits": 30, "ttlSeconds": 600, "reason": "render job"})).await;
    assert_eq!(opened.status, StatusCode::CREATED, "{:?}", opened.body);
    let hold_id = opened.data()["holdId"].as_str().unwrap().to_owned();
    assert_eq!(opened.data()["credits"], 30);
    assert_eq!(opened.data()["account"]["held"], 30);
    assert_eq!(opened.data()["account"]["available"], 70);
    assert_eq!(opened.data()["account"]["balance"], 100);
    let expected_expiry = shared::clock::rfc3339(app.clock_millis() + 600_000);
    assert_eq!(opened.data()["expiresAt"], expected_expiry.as_str());

    let read = app
        .request(Method::GET, &entity.path(&format!("/users/u-1/holds/{hold_id}")))
        .headers(&entity.server())
        .send()
        .await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(
        (read.data()["status"].as_str(), read.data()["credits"].as_u64(), read.data()["reason"].as_str()),
        (Some("active"), Some(30), Some("render job"))
    );

    let short = app
        .request(Method::POST, &entity.path("/users/u-1/decrement-credits"))
        .headers(&entity.server())
        .json(json!({"credits": 71}))
        .send()
        .await;
    assert_eq!(short.status, StatusCode::PAYMENT_REQUIRED, "held credits cannot be spent");

    let captured = settle(&app, &entity, &hold_id, "capture", json!({"credits": 12})).await;
    assert_eq!(captured.status, StatusCode::OK, "{:?}", captured.body);
    assert_eq!((captured.data()["captured"].as_u64(), captured.data()["released"].as_u64()), (Some(12), Some(18)));
    assert_eq!(captured.data()["status"], "captured");
    let account = &captured.data()["account"];
    assert_eq!(
        (account["balance"].as_i64(), account["held"].as_u64(), account["available"].as_i64()),
        (Some(88), Some(0), Some(88))
    );
    assert_eq!(account["lifetimeConsumed"], 12);

    let again = settle(&app, &entity, &hold_id, "release", json!({})).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.error_code(), "HOLD_NOT_ACTIVE");
    assert!(again.error_message().contains("captured"));
    let read = app
        .request(Method::GET, &entity.path(&format!("/users/u-1/holds/{hold_id}")))
        .headers(&entity.server())
        .send()
        .await;
    assert_eq!((read.data()["status"].as_str(), read.data()["capturedCredits"].as_u64()), (Some("captured"), Some(12)));

    let second = hold(&app, &entity, json!({"credits": 8})).await;
    let second_id = second.data()["holdId"].as_str().unwrap().to_owned();
    let released = settle(&app, &entity, &second_id, "release", json!({})).await;
    assert_eq!(released.status, StatusCode::OK);
    assert_eq!(
        (released.data()["released"].as_u64(), released.data()["account"]["available"].as_i64()),
        (Some(8), Some(88))
    );

    let ledger = app.assert_invariant(&entity.entity_id, "u-1").await;
    let kinds: Vec<_> = ledger.entries.iter().rev().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["grant", "hold", "capture", "release", "hold", "release"]);
}

#[tokio::test]
async fn an_expired_hold_counts_as_released_at_once_and_is_recorded() {
    let app = TestApp::start().await;
    let entity = app.funded(50).await;
    let opened = hold(&app, &entity, json!({"credits": 50, "ttlSeconds": 60})).await;
    let hold_id = opened.data()["holdId"].as_str().unwrap().to_owned();
    let path = entity.path("/users/u-1/credits");
    assert_eq!(app.request(Method::GET, &path).headers(&entity.server()).send().await.data()["available"], 0);

    app.clock.advance_seconds(60);
    let read = app.request(Method::GET, &path).headers(&entity.server()).send().await;
    assert_eq!((read.data()["held"].as_u64(), read.data()["available"].as_i64()), (Some(0), Some(50)));
    let status = app
        .request(Method::GET, &entity.path(&format!("/users/u-1/holds/{hold_id}")))
        .headers(&entity.server())
        .send()
        .await;
    assert_eq!(status.data()["status"], "expired");
    let capture = settle(&app, &entity, &hold_id, "capture", json!({})).await;
    assert_eq!(capture.status, StatusCode::CONFLICT);
    assert!(capture.error_message().contains("expired"));
    let spend = app
        .request(Method::POST, &entity.path("/users/u-1/decrement-credits"))
        .headers(&entity.server())
        .json(json!({"credits": 50}))
        .send()
        .await;
    assert_eq!(spend.status, StatusCode::OK, "expired credits are spendable: {:?}", spend.body);

    let ledger = app.assert_invariant(&entity.entity_id, "u-1").await;
    let kinds: Vec<_> = ledger.entries.iter().rev().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["grant", "hold", "expire", "decrement"]);
    assert_eq!(ledger.entries[1].hold_id.as_deref(), Some(hold_id.as_str()));
}

#[tokio::test]
async fn an_expired_hold_is_released_by_the_next_spend_in_the_same_write() {
    let app = TestApp::start().await;
    let entity = app.funded(20).await;
    hold(&app, &entity, json!({"credits": 20, "ttlSeconds": 60})).await;
    app.clock.advance_seconds(61);
    let spend = app
        .request(Method::POST, &entity.path("/users/u-1/decrement-credits"))
        .headers(&entity.server())
        .json(json!({"credits": 20}))
        .send()
        .await;
    assert_eq!(spend.status, StatusCode::OK);
    let ledger = app.assert_invariant(&entity.entity_id, "u-1").await;
    assert_eq!(ledger.entries[0].kind.as_str(), "decrement");
    assert_eq!(ledger.entries[1].kind.as_str(), "expire");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_holds_never_exceed_available() {
    let app = TestApp::start().await;
    let entity = app.funded(100).await;
    let requests = (0..40).map(|_| {
        app.request(Method::POST, &entity.path("/users/u-1/holds"))
            .headers(&entity.server())
            .json(json!({"credits": 7}))
            .send()
    });
    let responses = concurrently(requests).await;
    let created = responses.iter().filter(|r| r.status == StatusCode::CREATED).count();
    let refused = responses.iter().filter(|r| r.status == StatusCode::PAYMENT_REQUIRED).count();
    assert_eq!((created, refused), (14, 26), "100 / 7 = 14 holds fit");
    let ledger = app.assert_invariant(&entity.entity_id, "u-1").await;
    assert_eq!(ledger.account.holds.len(), 14);
    assert_eq!(ledger.entries.iter().filter(|e| e.kind.as_str() == "hold").count(), 14);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn capture_and_release_racing_on_one_hold_let_exactly_one_win() {
    let app = TestApp::start().await;
    let entity = app.funded(100).await;
    for _ in 0..5 {
        let opened = hold(&app, &entity, json!({"credits": 10})).await;
        let hold_id = opened.data()["holdId"].as_str().unwrap().to_owned();
        let racers = (0..10).map(|i| {
            let action = if i % 2 == 0 { "capture" } else { "release" };
            app.request(Method::POST, &entity.path(&format!("/users/u-1/holds/{hold_id}/{action}")))
                .headers(&entity.server())
                .json(json!({}))
                .send()
        });
        let responses = concurrently(racers).await;
        let wins = responses.iter().filter(|r| r.status == StatusCode::OK).count();
        let losses = responses.iter().filter(|r| r.error_code() == "HOLD_NOT_ACTIVE").count();
        assert_eq!((wins, losses), (1, 9));
    }
    let ledger = app.assert_invariant(&entity.entity_id, "u-1").await;
    assert!(ledger.account.holds.is_empty());
    let settled = ledger.entries.iter().filter(|e| matches!(e.kind.as_str(), "capture" | "release")).count();
    assert_eq!(settled, 5, "one settlement per hold");
}

#[tokio::test]
async fn bad_hold_input_is_refused_by_name_and_writes_nothing() {
    let app = TestApp::start().await;
    let entity = app.funded(100).await;
    let opened = hold(&app, &entity, json!({"credits": 10})).await;
    let hold_id = opened.data()["holdId"].as_str().unwrap().to_owned();
    let before = app.item_count().await;
    for (body, field) in [
        (json!({"credits": 0}), "credits"),
        (json!({"credits": -1}), "credits"),
        (json!({"credits": 1.5}), "credits"),
        (json!({"credits": "5"}), "credits"),
        (json!({"credits": 1_000_000_000_001u64}), "credits"),
        (json!({"credits": 5, "ttlSeconds": 59}), "ttlSeconds"),
        (json!({"credits": 5, "ttlSeconds": 86401}), "ttlSeconds"),
        (json!({"credits": 5, "extra": true}), "extra"),
        (json!({}), "credits"),
    ] {
        let response = hold(&app, &entity, body.clone()).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(response.error_message().contains(field), "{body}: {}", response.error_message());
    }
    for (body, field) in [(json!({"credits": 11}), "credits"), (json!({"credits": 0}), "credits")] {
        let response = settle(&app, &entity, &hold_id, "capture", body.clone()).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(response.error_message().contains(field));
    }
    let release_with_credits = settle(&app, &entity, &hold_id, "release", json!({"credits": 1})).await;
    assert_eq!(release_with_credits.status, StatusCode::BAD_REQUEST);
    let unknown = settle(&app, &entity, "01JAAAAAAAAAAAAAAAAAAAAAAA", "capture", json!({})).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let garbage = settle(&app, &entity, "not-a-hold", "capture", json!({})).await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);
    assert!(garbage.error_message().contains("holdId"));
    let unknown_read = app
        .request(Method::GET, &entity.path("/users/u-1/holds/01JAAAAAAAAAAAAAAAAAAAAAAA"))
        .headers(&entity.server())
        .send()
        .await;
    assert_eq!(unknown_read.status, StatusCode::NOT_FOUND);
    assert_eq!(app.item_count().await, before, "refusals write nothing");
    app.assert_invariant(&entity.entity_id, "u-1").await;
}
