//! Real concurrency over HTTP against the emulator: parallel spends on one account, shared
//! idempotency keys, and two warm processes writing the same account.

use axum::http::{Method, StatusCode};
use integration_tests::fixtures::EntityFixture;
use integration_tests::{TestApp, concurrently};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_parallel_spends_of_one_on_a_hundred_credits() {
    let app = TestApp::start().await;
    let entity = app.funded(100).await;
    let user = app.session(&entity, "u-1").await;
    let spends = (0..200).map(|_| {
        app.request(Method::POST, &entity.path("/users/u-1/decrement-credits"))
            .headers(&user)
            .json(json!({"credits": 1}))
            .send()
    });
    let responses = concurrently(spends).await;
    let ok = responses.iter().filter(|r| r.status == StatusCode::OK).count();
    let short = responses.iter().filter(|r| r.status == StatusCode::PAYMENT_REQUIRED).count();
    assert_eq!((ok, short), (100, 100));
    let ledger = app.assert_invariant(&entity.entity_id, "u-1").await;
    assert_eq!(ledger.account.balance, 0);
    assert_eq!(ledger.entries.iter().filter(|e| e.kind.as_str() == "decrement").count(), 100);
    let mut ids: Vec<_> = responses.iter().filter_map(|r| r.data()["entryId"].as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100, "every success has its own entry");
}

fn spend_one(
    app: &TestApp,
    entity: &EntityFixture,
) -> impl std::future::Future<Output = integration_tests::TestResponse> + Send + 'static {
    app.request(Method::POST, &entity.path("/users/u-1/decrement-credits"))
        .headers(&entity.server())
        .json(json!({"credits": 1}))
        .send()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_warm_processes_spending_one_account_never_overspend() {
    let app = TestApp::start().await;
    let other = app.sibling().await;
    let entity = app.funded(60).await;
    let requests: Vec<_> = (0..50).flat_map(|_| [spend_one(&app, &entity), spend_one(&other, &entity)]).collect();
    let responses = concurrently(requests).await;
    let statuses: Vec<_> = responses.iter().map(|r| r.status.as_u16()).collect();
    let count = |status| statuses.iter().filter(|s| **s == status).count();
    // Every credit is spent exactly once; a spend may give up (503) only after its retry
    // budget against the other process, and then it changed nothing.
    assert_eq!(count(200), 60, "{statuses:?}");
    assert_eq!(count(402) + count(503), 40, "{statuses:?}");
    assert!(count(503) <= 5, "contention should rarely exhaust the budget: {statuses:?}");
    let ledger = app.assert_invariant(&entity.entity_id, "u-1").await;
    assert_eq!(ledger.account.balance, 0);
    assert_eq!(ledger.entries.len(), 61);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_parallel_requests_with_one_key_have_one_effect() {
    let app = TestApp::start().await;
    let entity = app.funded(100).await;
    let other = app.sibling().await;
    let requests: Vec<_> = (0..20)
        .map(|i| {
            let target = if i % 2 == 0 { &app } else { &other };
            target
                .request(Method::POST, &entity.path("/users/u-1/decrement-credits"))
                .headers(&entity.server())
                .header("idempotency-key", "once")
                .json(json!({"credits": 7}))
                .send()
        })
        .collect();
    let responses = concurrently(requests).await;
    for response in &responses {
        assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
        assert_eq!(response.body, responses[0].body, "every caller gets the same answer");
    }
    let ledger = app.assert_invariant(&entity.entity_id, "u-1").await;
    assert_eq!(ledger.account.balance, 93);
    assert_eq!(ledger.entries.len(), 2);
}
