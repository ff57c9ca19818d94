//! Events to entities (§9) end to end: the routers write, the table's stream feeds the
//! dispatcher's Lambda handler (as the event source mapping does), and a receiver verifies
//! every delivery with the Standard Webhooks reference library.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use axum::http::{Method, StatusCode};
use integration_tests::emulator::{self, control};
use integration_tests::events::{Events, Receiver, TEST_INVOCATION_BUDGET, types};
use integration_tests::fixtures::EntityFixture;
use integration_tests::{TestApp, TestResponse, concurrently};
use serde_json::{Value, json};
use shared::clock::{Clock, SystemClock};
use shared::domain::account::EntryType;
use shared::store::dynamo::DynamoStore;
use shared::store::keys;
use shared::store::{LedgerStore, WebhookStore};

async fn call(app: &TestApp, entity: &EntityFixture, method: Method, rest: &str, body: Value) -> TestResponse {
    app.request(method, &entity.path(rest)).headers(&entity.server()).json(body).send().await
}

/// Registers `hook` of the receiver as an endpoint and tells the receiver its secret.
async fn endpoint(app: &TestApp, entity: &EntityFixture, receiver: &Receiver, hook: &str, events: Value) -> String {
    let mut body = json!({"url": receiver.url(hook), "description": hook});
    if !events.is_null() {
        body["events"] = events;
    }
    let created = call(app, entity, Method::POST, "/webhook-endpoints", body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let secret = created.data()["secret"].as_str().expect("the secret is shown at creation");
    assert!(secret.starts_with("whsec_"));
    receiver.configure(hook, json!({"secrets": [secret]}));
    created.data()["endpointId"].as_str().expect("endpointId").to_owned()
}

async fn set_threshold(app: &TestApp, entity: &EntityFixture, threshold: u64) {
    let set = call(app, entity, Method::PUT, "/settings", json!({"lowBalanceThreshold": threshold})).await;
    assert_eq!(set.status, StatusCode::OK, "{:?}", set.body);
    assert_eq!(set.data()["lowBalanceThreshold"], threshold);
}

async fn spend(app: &TestApp, entity: &EntityFixture, user: &str, credits: u64) -> TestResponse {
    call(app, entity, Method::POST, &format!("/users/{user}/decrement-credits"), json!({"credits": credits})).await
}

async fn grant(app: &TestApp, entity: &EntityFixture, user: &str, credits: u64) -> TestResponse {
    let key = ulid::Ulid::new().to_string();
    call(
        app,
        entity,
        Method::POST,
        &format!("/users/{user}/buy-credits"),
        json!({"credits": credits, "idempotencyKey": key}),
    )
    .await
}

/// Every ledger entry of an account, oldest first.
async fn ledger(app: &TestApp, entity: &EntityFixture, user: &str) -> Vec<Value> {
    let mut entries = app.history(entity, user).await;
    entries.reverse();
    entries
}

fn credit_event_type(entry_type: &str) -> Option<&'static str> {
    match entry_type {
        "purchase" => Some("credits.purchased"),
        "grant" => Some("credits.granted"),
        "reversal" => Some("credits.reversed"),
        "regrant" => Some("credits.regranted"),
        "expire" => Some("hold.expired"),
        "decrement" | "capture" => Some("credits.spent"),
        _ => None,
    }
}

#[tokio::test]
async fn the_bar_two_grants_one_low_one_recovered_in_causal_order() {
    let app = TestApp::start().await;
    let events = Arc::new(Events::new(&app).await);
    let _feed = events.run().await;
    let receiver = Receiver::start();
    let entity = app.entity(&[]).await;
    endpoint(&app, &entity, &receiver, "bar", Value::Null).await;
    set_threshold(&app, &entity, 10).await;

    assert_eq!(grant(&app, &entity, "u-1", 30).await.status, StatusCode::OK);
    for _ in 0..6 {
        assert_eq!(spend(&app, &entity, "u-1", 5).await.status, StatusCode::OK);
    }
    assert_eq!(grant(&app, &entity, "u-1", 40).await.status, StatusCode::OK);

    let got = receiver.wait_for("bar", "four events", |r| r.len() >= 4).await;
    assert_eq!(types(&got), ["credits.granted", "credits.low", "credits.granted", "credits.recovered"]);
    assert_eq!(got[1].body["data"]["account"]["available"], 5, "low when 10 → 5 crossed the threshold");
    assert_eq!(got[3].body["data"]["account"]["available"], 40);
    assert_eq!(got[0].body["data"]["entry"]["credits"], 30);
    assert_eq!(got[0].body["data"]["userId"], "u-1");
    assert!(receiver.attempts("bar").iter().all(|a| a.outcome == "verified"), "every delivery verified");
    // Nothing more arrives: spends are opt-in, and the stream is drained.
    let ledger = ledger(&app, &entity, "u-1").await;
    assert_eq!(ledger.len(), 8);
    assert_eq!(receiver.verified("bar").len(), 4);
    events.assert_declared_actions();
}

/// A change nobody reads or follows with another write still has its event: the dispatcher
/// moves the account's journal out when the stream shows it holding changes.
#[tokio::test]
async fn a_lone_change_gets_its_event_without_any_later_read_or_write() {
    let app = TestApp::start().await;
    let events = Arc::new(Events::new(&app).await);
    let _feed = events.run().await;
    let receiver = Receiver::start();
    let entity = app.entity(&[]).await;
    endpoint(&app, &entity, &receiver, "lone", Value::Null).await;

    assert_eq!(grant(&app, &entity, "u-1", 7).await.status, StatusCode::OK);
    let got = receiver.wait_for("lone", "the grant's event", |r| !r.is_empty()).await;
    assert_eq!(types(&got), ["credits.granted"]);
    assert_eq!(got[0].body["data"]["entry"]["credits"], 7);
}

#[tokio::test]
async fn events_match_the_ledger_one_to_one_in_account_order_after_a_burst() {
    let app = TestApp::start().await;
    let events = Arc::new(Events::new(&app).await);
    let _feed = events.run().await;
    let receiver = Receiver::start();
    let entity = app.entity(&[]).await;
    let every_type: Vec<&str> = vec![
        "credits.purchased",
        "credits.granted",
        "credits.reversed",
        "credits.regranted",
        "credits.low",
        "credits.recovered",
        "credits.expired",
        "credits.spent",
        "hold.expired",
        "payment.failed",
        "subscription.renewed",
        "subscription.ended",
    ];
    endpoint(&app, &entity, &receiver, "all", json!(every_type)).await;
    set_threshold(&app, &entity, 20).await;
    app.tier(&entity, json!({"creditTierId": "starter", "name": "Starter", "credits": 100, "price": 1000})).await;

    // A purchase paid at the Stripe stand-in, then half of it refunded.
    let pay = app
        .request(Method::POST, "/api/payment/pay")
        .headers(&entity.server())
        .json(json!({"id": "pm_card_visa", "product": {"creditTierId": "starter"},
                     "info": {"userId": "u-1", "entityId": entity.entity_id}}))
        .send()
        .await;
    assert_eq!(pay.status, StatusCode::OK, "{:?}", pay.body);
    let intent = pay.data()["paymentIntentId"].as_str().expect("intent").to_owned();

    let users = ["u-1", "u-2", "u-3"];
    for user in &users[1..] {
        assert_eq!(grant(&app, &entity, user, 60).await.status, StatusCode::OK);
    }
    let mut burst = Vec::new();
    for round in 0..4 {
        for user in users {
            let path = entity.path(&format!("/users/{user}/decrement-credits"));
            burst.push(app.request(Method::POST, &path).headers(&entity.server()).json(json!({"credits": 7})).send());
            let path = entity.path(&format!("/users/{user}/buy-credits"));
            let key = format!("burst-{user}-{round}");
            burst.push(
                app.request(Method::POST, &path)
                    .headers(&entity.server())
                    .json(json!({"credits": 3, "idempotencyKey": key}))
                    .send(),
            );
            let path = entity.path(&format!("/users/{user}/holds"));
            burst.push(app.request(Method::POST, &path).headers(&entity.server()).json(json!({"credits": 4})).send());
        }
    }
    let answers = concurrently(burst).await;
    assert!(answers.iter().all(|a| a.status == StatusCode::OK
        || a.status == StatusCode::CREATED
        || a.status == StatusCode::PAYMENT_REQUIRED));
    // Settle some holds: one captured, one released, per user.
    for user in users {
        let holds: Vec<String> = answers
            .iter()
            .filter(|a| a.status == StatusCode::CREATED && a.data()["account"]["userId"] == user)
            .filter_map(|a| a.data()["holdId"].as_str().map(str::to_owned))
            .collect();
        if let [first, second, ..] = holds.as_slice() {
            let captured = call(
                &app,
                &entity,
                Method::POST,
                &format!("/users/{user}/holds/{first}/capture"),
                json!({"credits": 2}),
            )
            .await;
            assert_eq!(captured.status, StatusCode::OK, "{:?}", captured.body);
            let released =
                call(&app, &entity, Method::POST, &format!("/users/{user}/holds/{second}/release"), json!({})).await;
            assert_eq!(released.status, StatusCode::OK, "{:?}", released.body);
        }
    }
    let refund = app.stripe_api("POST", "/v1/refunds", &format!("payment_intent={intent}&amount=500"));
    assert_eq!(refund["status"], "succeeded", "{refund}");
    for event in app.events_about(&intent) {
        assert_eq!(app.deliver(&event).await.status, StatusCode::OK);
    }

    // Every entry that means a credit event, and the derived alerts.
    let mut expected: HashMap<String, (String, String)> = HashMap::new();
    let mut entry_order: HashMap<String, Vec<String>> = HashMap::new();
    for user in users {
        for entry in ledger(&app, &entity, user).await {
            let id = entry["entryId"].as_str().expect("entryId").to_owned();
            if let Some(kind) = credit_event_type(entry["type"].as_str().unwrap_or_default()) {
                expected.insert(format!("evt_{id}"), (kind.to_owned(), user.to_owned()));
                entry_order.entry(user.to_owned()).or_default().push(format!("evt_{id}"));
            }
        }
    }
    assert!(expected.values().any(|(kind, _)| kind == "credits.reversed"), "the refund reversed credits");
    let got = receiver
        .wait_for("all", "an event per ledger entry", |r| {
            let ids: HashSet<&str> = r.iter().map(|e| e.id.as_str()).collect();
            expected.keys().all(|id| ids.contains(id.as_str()))
        })
        .await;

    let mut per_user: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for event in &got {
        let kind = event.body["type"].as_str().unwrap_or_default();
        let user = event.body["data"]["userId"].as_str().unwrap_or_default().to_owned();
        match expected.get(&event.id) {
            Some((expected_kind, expected_user)) => {
                assert_eq!((kind, &user), (expected_kind.as_str(), expected_user), "{}", event.id);
                assert_eq!(
                    format!("evt_{}", event.body["data"]["entry"]["entryId"].as_str().unwrap_or_default()),
                    event.id
                );
                per_user.entry(user).or_default().push(event.id.clone());
            }
            None => {
                assert!(["credits.low", "credits.recovered"].contains(&kind), "invented event {} {kind}", event.id);
                let entry_id = event.body["data"]["entryId"].as_str().unwrap_or_default();
                assert!(event.id.starts_with(&format!("evt_{entry_id}_")), "an alert's id derives from its entry");
            }
        }
    }
    assert_eq!(got.iter().filter(|e| expected.contains_key(&e.id)).count(), expected.len(), "one event per entry");
    for (user, ids) in per_user {
        assert_eq!(ids, entry_order[&user], "{user}'s events arrive in ledger order");
    }
    events.assert_declared_actions();
}

#[tokio::test]
async fn refused_and_slow_attempts_are_retried_with_the_same_id_and_logged() {
    let app = TestApp::start().await;
    let events = Arc::new(Events::new(&app).await);
    let _feed = events.run().await;
    let receiver = Receiver::start();
    let entity = app.entity(&[]).await;
    let endpoint_id = endpoint(&app, &entity, &receiver, "flaky", Value::Null).await;
    assert_secret_not_shown(&app, &entity, &endpoint_id).await;
    receiver.configure("flaky", json!({"refuse_first": 2, "slow_first": 1, "slow_seconds": 4}));

    assert_eq!(grant(&app, &entity, "u-1", 30).await.status, StatusCode::OK);
    assert_eq!(grant(&app, &entity, "u-1", 5).await.status, StatusCode::OK);
    let got = receiver.wait_for("flaky", "both grants", |r| r.len() >= 2).await;
    assert_eq!(types(&got), ["credits.granted", "credits.granted"]);
    assert_eq!(got[0].body["data"]["entry"]["credits"], 30, "the first grant first, after its retries");

    let attempts = receiver.attempts("flaky");
    let first_id = &got[0].id;
    let outcomes: Vec<&str> = attempts.iter().filter(|a| &a.id == first_id).map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes[..3], ["refused", "refused", "slow"], "the same webhook-id on every attempt");
    assert!(outcomes.len() >= 4 && outcomes[3..].iter().all(|o| *o == "verified"), "{outcomes:?}");
    let second = attempts.iter().position(|a| a.id == got[1].id).expect("second delivered");
    let first_verified = attempts.iter().position(|a| &a.id == first_id && a.outcome == "verified").expect("first");
    assert!(second > first_verified, "the later event waited for the earlier one");

    let log =
        call(&app, &entity, Method::GET, &format!("/webhook-endpoints/{endpoint_id}/deliveries"), Value::Null).await;
    assert_eq!(log.status, StatusCode::OK, "{:?}", log.body);
    let mut entries = log.data()["deliveries"].as_array().cloned().unwrap_or_default();
    entries.reverse();
    let of_first: Vec<(String, Value, bool)> = entries
        .iter()
        .filter(|d| d["eventId"] == first_id.as_str())
        .map(|d| {
            (
                d["status"].as_str().unwrap_or_default().to_owned(),
                d["responseCode"].clone(),
                d["nextRetryAt"].is_string(),
            )
        })
        .collect();
    assert!(of_first.len() >= 4, "{entries:?}");
    assert_eq!(of_first[0], ("retrying".to_owned(), json!(503), true));
    assert_eq!(of_first[1], ("retrying".to_owned(), json!(503), true));
    assert_eq!((of_first[2].0.as_str(), &of_first[2].1), ("retrying", &Value::Null), "the slow answer timed out");
    assert_eq!(of_first.last(), Some(&("delivered".to_owned(), json!(204), false)));

    // Redelivery sends the event again, with the same id, verified.
    let redelivered = call(&app, &entity, Method::POST, &format!("/events/{first_id}/redeliver"), json!({})).await;
    assert_eq!(redelivered.status, StatusCode::ACCEPTED, "{:?}", redelivered.body);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while receiver.attempts("flaky").iter().filter(|a| &a.id == first_id && a.outcome == "verified").count() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "redelivery did not arrive");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// The secret is shown only at creation and rotation: a read never shows it.
async fn assert_secret_not_shown(app: &TestApp, entity: &EntityFixture, endpoint_id: &str) {
    let read = call(app, entity, Method::GET, &format!("/webhook-endpoints/{endpoint_id}"), Value::Null).await;
    assert_eq!(read.status, StatusCode::OK);
    assert!(!read.body.to_string().contains("whsec_"), "{:?}", read.body);
    let listed = call(app, entity, Method::GET, "/webhook-endpoints", Value::Null).await;
    assert!(!listed.body.to_string().contains("whsec_"), "{:?}", listed.body);
}

#[tokio::test]
async fn both_secrets_sign_for_a_day_after_rotation() {
    let app = TestApp::start().await;
    let events = Arc::new(Events::new(&app).await);
    let _feed = events.run().await;
    let receiver = Receiver::start();
    let entity = app.entity(&[]).await;
    let created = call(&app, &entity, Method::POST, "/webhook-endpoints", json!({"url": receiver.url("old")})).await;
    let old_secret = created.data()["secret"].as_str().expect("secret").to_owned();
    let endpoint_id = created.data()["endpointId"].as_str().expect("id").to_owned();
    let rotated =
        call(&app, &entity, Method::POST, &format!("/webhook-endpoints/{endpoint_id}/rotate-secret"), json!({})).await;
    let new_secret = rotated.data()["secret"].as_str().expect("new secret").to_owned();
    assert_ne!(old_secret, new_secret);
    assert!(rotated.data()["previousSecretRetiresAt"].is_string());
    receiver.configure("old", json!({"secrets": [old_secret]}));
    assert_eq!(grant(&app, &entity, "u-1", 3).await.status, StatusCode::OK);
    let got = receiver.wait_for("old", "a delivery verified with the old secret", |r| !r.is_empty()).await;
    assert_eq!(types(&got), ["credits.granted"]);
    // The same delivery verifies with the new secret alone: both signatures are on it.
    receiver.configure("old", json!({"secrets": [new_secret]}));
    let redelivered = call(&app, &entity, Method::POST, &format!("/events/{}/redeliver", got[0].id), json!({})).await;
    assert_eq!(redelivered.status, StatusCode::ACCEPTED);
    let again = receiver.wait_for("old", "verified with the new secret", |r| !r.is_empty()).await;
    assert_eq!(again[0].id, got[0].id);
}

#[tokio::test]
async fn a_dispatcher_crash_mid_batch_loses_nothing_and_invents_nothing() {
    let app = TestApp::start().await;
    let events = Arc::new(Events::new(&app).await);
    let receiver = Receiver::start();
    let entity = app.entity(&[]).await;
    endpoint(&app, &entity, &receiver, "crash", Value::Null).await;
    for n in 1..=12 {
        assert_eq!(grant(&app, &entity, &format!("u-{}", n % 3), n).await.status, StatusCode::OK);
    }
    // Reading the history moves the accounts' journals out, so the batch holds the entries.
    for user in ["u-0", "u-1", "u-2"] {
        assert_eq!(ledger(&app, &entity, user).await.len(), 4);
    }
    let batch = events.records().await;
    assert!(batch.len() > 12, "the batch holds the entries and the other writes");

    // The first invocation dies once some deliveries went out (a crash mid-batch).
    let crashing = {
        let events = Arc::clone(&events);
        let batch = batch.clone();
        tokio::spawn(async move { events.invoke(batch).await })
    };
    receiver.wait_for("crash", "the first deliveries", |r| !r.is_empty()).await;
    crashing.abort();
    let _ = crashing.await;

    // Lambda hands the whole batch to the next invocation; the tick retries what waits.
    events.invoke(batch).await;
    let expected: HashSet<String> = {
        let mut ids = HashSet::new();
        for user in ["u-0", "u-1", "u-2"] {
            for entry in ledger(&app, &entity, user).await {
                ids.insert(format!("evt_{}", entry["entryId"].as_str().unwrap_or_default()));
            }
        }
        ids
    };
    assert_eq!(expected.len(), 12);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let got = loop {
        events.tick().await;
        let got = receiver.verified("crash");
        if got.len() >= expected.len() || tokio::time::Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let ids: HashSet<String> = got.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids, expected, "every entry's event, and no other");
    // Duplicates (at least once) carry the same body as the first delivery of their id.
    let mut bodies: HashMap<String, Value> = HashMap::new();
    for attempt in receiver.attempts("crash").into_iter().filter(|a| a.outcome == "verified") {
        let first = bodies.entry(attempt.id.clone()).or_insert_with(|| attempt.body.clone());
        assert_eq!(first, &attempt.body);
    }
}

#[tokio::test]
async fn deleting_an_endpoint_mid_retry_stops_its_attempts() {
    let app = TestApp::start().await;
    let events = Arc::new(Events::new(&app).await);
    let _feed = events.run().await;
    let receiver = Receiver::start();
    let entity = app.entity(&[]).await;
    let endpoint_id = endpoint(&app, &entity, &receiver, "gone", Value::Null).await;
    receiver.configure("gone", json!({"refuse_first": 1000}));
    assert_eq!(grant(&app, &entity, "u-1", 3).await.status, StatusCode::OK);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while receiver.attempts("gone").len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no retries seen");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let deleted = call(&app, &entity, Method::DELETE, &format!("/webhook-endpoints/{endpoint_id}"), Value::Null).await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.body);
    // The dispatcher drops the queue at its next look.
    let store = &events.dispatcher.store;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while !store.queued(&endpoint_id).await.expect("queue").is_empty()
        || store.due_mark(&endpoint_id).await.expect("mark").is_some()
    {
        assert!(tokio::time::Instant::now() < deadline, "the queue of a deleted endpoint was not dropped");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let attempts = receiver.attempts("gone").len();
    for _ in 0..5 {
        events.tick().await;
    }
    assert_eq!(receiver.attempts("gone").len(), attempts, "no attempt after the endpoint was deleted");
    let read = call(&app, &entity, Method::GET, &format!("/webhook-endpoints/{endpoint_id}"), Value::Null).await;
    assert_eq!(read.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn alerts_fire_once_per_crossing_and_never_flap() {
    let app = TestApp::start().await;
    let events = Arc::new(Events::new(&app).await);
    let _feed = events.run().await;
    let receiver = Receiver::start();
    let entity = app.entity(&[]).await;
    endpoint(&app, &entity, &receiver, "alerts", json!(["credits.low", "credits.recovered"])).await;
    set_threshold(&app, &entity, 10).await;
    // u-2 has a threshold of its own.
    let own = call(&app, &entity, Method::PUT, "/users/u-2/settings", json!({"lowBalanceThreshold": 3})).await;
    assert_eq!(own.status, StatusCode::OK, "{:?}", own.body);
    assert_eq!(own.data()["inherited"], false);

    // u-1: 12 → 11 → 10 → 9 (low) → 8 → 10 (recovered) → 9 (low) → 12 (recovered) → hold 5: 7 (low)
    //      → release: 12 (recovered)
    assert_eq!(grant(&app, &entity, "u-1", 12).await.status, StatusCode::OK);
    for credits in [1, 1, 1, 1] {
        assert_eq!(spend(&app, &entity, "u-1", credits).await.status, StatusCode::OK);
    }
    assert_eq!(grant(&app, &entity, "u-1", 2).await.status, StatusCode::OK);
    assert_eq!(spend(&app, &entity, "u-1", 1).await.status, StatusCode::OK);
    assert_eq!(grant(&app, &entity, "u-1", 3).await.status, StatusCode::OK);
    let hold = call(&app, &entity, Method::POST, "/users/u-1/holds", json!({"credits": 5})).await;
    assert_eq!(hold.status, StatusCode::CREATED);
    let hold_id = hold.data()["holdId"].as_str().expect("hold").to_owned();
    let release = call(&app, &entity, Method::POST, &format!("/users/u-1/holds/{hold_id}/release"), json!({})).await;
    assert_eq!(release.status, StatusCode::OK);
    // u-2 (threshold 3): 5 → 4 → 3 → 2 (low) → 1: one alert only.
    assert_eq!(grant(&app, &entity, "u-2", 5).await.status, StatusCode::OK);
    for _ in 0..4 {
        assert_eq!(spend(&app, &entity, "u-2", 1).await.status, StatusCode::OK);
    }

    let got = receiver.wait_for("alerts", "every crossing", |r| r.len() >= 7).await;
    let of = |user: &str| -> Vec<(String, i64)> {
        got.iter()
            .filter(|r| r.body["data"]["userId"] == user)
            .map(|r| {
                (
                    types(std::slice::from_ref(r))[0].clone(),
                    r.body["data"]["account"]["available"].as_i64().unwrap_or(-1),
                )
            })
            .collect()
    };
    let low = |a: i64| ("credits.low".to_owned(), a);
    let recovered = |a: i64| ("credits.recovered".to_owned(), a);
    assert_eq!(of("u-1"), [low(9), recovered(10), low(9), recovered(12), low(7), recovered(12)]);
    assert_eq!(of("u-2"), [low(2)]);
    assert_eq!(receiver.verified("alerts").len(), 7, "nothing more");
}

#[tokio::test]
async fn refuses_bad_urls_foreign_endpoints_and_user_sessions_writing_nothing() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    let other = app.entity(&[]).await;
    let before = app.item_count().await;
    for url in [
        "http://hooks.example.com/in",
        "ftp://hooks.example.com/in",
        "https://10.0.0.8/in",
        "https://192.168.0.1/in",
        "https://172.20.1.1/in",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/",
        "https://[fe80::1]/",
        "https://metadata.google.internal/",
        "http://10.0.0.8/in",
        "https://user:pass@hooks.example.com/",
        "not a url",
    ] {
        let refused = call(&app, &entity, Method::POST, "/webhook-endpoints", json!({"url": url})).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{url}: {:?}", refused.body);
        assert!(refused.error_message().starts_with("url "), "{url}: {}", refused.error_message());
    }
    let unknown_type = call(
        &app,
        &entity,
        Method::POST,
        "/webhook-endpoints",
        json!({"url": "https://hooks.example.com", "events": ["credits.nope"]}),
    )
    .await;
    assert_eq!(unknown_type.status, StatusCode::BAD_REQUEST);
    assert!(unknown_type.error_message().starts_with("events"));
    let unknown_field = call(
        &app,
        &entity,
        Method::POST,
        "/webhook-endpoints",
        json!({"url": "https://hooks.example.com", "secret": "x"}),
    )
    .await;
    assert_eq!(unknown_field.status, StatusCode::BAD_REQUEST);
    assert!(unknown_field.error_message().contains("secret"));
    let bad_threshold = call(&app, &entity, Method::PUT, "/settings", json!({"lowBalanceThreshold": -1})).await;
    assert_eq!(bad_threshold.status, StatusCode::BAD_REQUEST);
    assert!(bad_threshold.error_message().contains("lowBalanceThreshold"));
    assert_eq!(app.item_count().await, before, "nothing written");

    let user = app.session(&entity, "u-1").await;
    let as_user = app
        .request(Method::POST, &entity.path("/webhook-endpoints"))
        .headers(&user)
        .json(json!({"url": "https://hooks.example.com/in"}))
        .send()
        .await;
    assert_eq!(as_user.status, StatusCode::FORBIDDEN);
    let user_list = app.request(Method::GET, &entity.path("/webhook-endpoints")).headers(&user).send().await;
    assert_eq!(user_list.status, StatusCode::FORBIDDEN);

    let theirs =
        call(&app, &other, Method::POST, "/webhook-endpoints", json!({"url": "https://hooks.example.com/in"})).await;
    assert_eq!(theirs.status, StatusCode::CREATED, "{:?}", theirs.body);
    let their_id = theirs.data()["endpointId"].as_str().expect("id").to_owned();
    for (method, rest) in [
        (Method::GET, format!("/webhook-endpoints/{their_id}")),
        (Method::DELETE, format!("/webhook-endpoints/{their_id}")),
        (Method::POST, format!("/webhook-endpoints/{their_id}/rotate-secret")),
        (Method::GET, format!("/webhook-endpoints/{their_id}/deliveries")),
    ] {
        let body = if method == Method::POST { json!({}) } else { Value::Null };
        let answer = call(&app, &entity, method.clone(), &rest, body).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{method} {rest}");
    }
    let listed = call(&app, &entity, Method::GET, "/webhook-endpoints", Value::Null).await;
    assert_eq!(listed.data(), &json!([]), "another entity's endpoints are not listed");
    let still = call(&app, &other, Method::GET, &format!("/webhook-endpoints/{their_id}"), Value::Null).await;
    assert_eq!(still.status, StatusCode::OK, "nothing was deleted or rotated");
    assert_eq!(still.data()["url"], "https://hooks.example.com/in");
}

#[tokio::test]
async fn a_declined_payment_is_reported_once() {
    let app = TestApp::start().await;
    let events = Arc::new(Events::new(&app).await);
    let _feed = events.run().await;
    let receiver = Receiver::start();
    let entity = app.entity(&[]).await;
    endpoint(&app, &entity, &receiver, "billing", json!(["payment.failed"])).await;
    app.tier(&entity, json!({"creditTierId": "starter", "name": "Starter", "credits": 100, "price": 1000})).await;
    let declined = app
        .request(Method::POST, "/api/payment/pay")
        .headers(&entity.server())
        .json(json!({"id": "pm_card_chargeDeclined", "product": {"creditTierId": "starter"},
                     "info": {"userId": "u-9", "entityId": entity.entity_id}}))
        .send()
        .await;
    assert_eq!(declined.status, StatusCode::PAYMENT_REQUIRED, "{:?}", declined.body);
    let failed = app.stripe_events("payment_intent.payment_failed");
    let event = failed.first().expect("the stand-in reports the failure");
    let intent = event["data"]["object"]["id"].as_str().expect("intent id").to_owned();
    // Stripe's event, delivered twice, marks the payment failed once.
    for _ in 0..2 {
        assert_eq!(app.deliver(&event.to_string()).await.status, StatusCode::OK);
    }
    let got = receiver.wait_for("billing", "payment.failed", |r| !r.is_empty()).await;
    assert_eq!(types(&got), ["payment.failed"]);
    assert_eq!(got[0].id, format!("evt_payment_failed_{intent}"));
    assert_eq!(got[0].body["data"]["paymentIntentId"], intent.as_str());
    assert_eq!(got[0].body["data"]["userId"], "u-9");
    assert_eq!(receiver.verified("billing").len(), 1);
}

/// The records an invocation handed back to the stream (their sequence numbers).
fn handed_back(answers: &[Value]) -> Vec<String> {
    answers
        .iter()
        .flat_map(|a| a["batchItemFailures"].as_array().cloned().unwrap_or_default())
        .map(|f| f["itemIdentifier"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// How many records the account's journal holds, as stored.
async fn journal_len(app: &TestApp, entity: &EntityFixture, user: &str) -> usize {
    let store = DynamoStore::new(app.dynamodb.clone(), app.table.clone());
    let account = store.get_account(&entity.entity_id, user).await.expect("read the account");
    account.expect("the account exists").journal.len()
}

/// Claims the account's journal for a mover until `until`, as a mover does, and no mover
/// follows: one that died, or whose claiming write's answer was lost.
async fn claim_journal(app: &TestApp, entity: &EntityFixture, user: &str, until: i64) {
    app.dynamodb
        .update_item()
        .table_name(&app.table)
        .set_key(Some(keys::account(&entity.entity_id, user).to_item()))
        .update_expression("SET moverUntil = :until")
        .expression_attribute_values(":until", AttributeValue::N(until.to_string()))
        .send()
        .await
        .expect("claim the journal");
}

/// The ids of the account's `credits.spent` events: one per decrement in its ledger.
async fn spent_event_ids(app: &TestApp, entity: &EntityFixture, user: &str) -> HashSet<String> {
    let entries = ledger(app, entity, user).await;
    entries
        .iter()
        .filter(|e| e["type"] == "decrement")
        .map(|e| format!("evt_{}", e["entryId"].as_str().unwrap_or_default()))
        .collect()
}

/// Every attempt the hook saw was verified, and each of `expected` arrived exactly once.
fn assert_delivered_once(receiver: &Receiver, hook: &str, expected: &HashSet<String>) {
    let attempts = receiver.attempts(hook);
    let mut per_id: HashMap<&str, usize> = HashMap::new();
    for attempt in &attempts {
        assert_eq!(attempt.outcome, "verified", "{attempt:?}");
        *per_id.entry(attempt.id.as_str()).or_default() += 1;
    }
    let ids: HashSet<String> = per_id.keys().map(|id| (*id).to_owned()).collect();
    assert_eq!(&ids, expected, "every event, and no other");
    assert!(per_id.values().all(|n| *n == 1), "one delivery per event id: {per_id:?}");
}

/// A grant moved out to its entry, then spends left in the journal one short of a move (the
/// next record would have its writer claim the journal and move it); how many. The grant is
/// another process's, so this one's first spend reads the journal as the read left it.
async fn spends_short_of_a_move(app: &TestApp, entity: &EntityFixture, user: &str) -> usize {
    assert_eq!(grant(&app.sibling().await, entity, user, 100).await.status, StatusCode::OK);
    assert_eq!(ledger(app, entity, user).await.len(), 1, "reading the history moved the grant out");
    let short = shared::accounts::MOVE_EVERY - 1;
    for _ in 0..short {
        assert_eq!(spend(app, entity, user, 1).await.status, StatusCode::OK);
    }
    assert_eq!(journal_len(app, entity, user).await, short);
    short
}

/// Less than an invocation needs to wait out a mover's claim and take the journal over.
const SHORT_BUDGET: Duration = Duration::from_secs(4);

/// A stream batch processed again (Lambda retries a batch after an error or a time-out, and
/// bisects it) queues nothing already queued: each event reaches the endpoint once.
#[tokio::test]
async fn a_batch_processed_twice_delivers_each_event_once() {
    let app = TestApp::start().await;
    let events = Events::new(&app).await;
    let receiver = Receiver::start();
    let entity = app.entity(&[]).await;
    endpoint(&app, &entity, &receiver, "once", Value::Null).await;
    let mut expected = HashSet::new();
    for n in 1..=6 {
        assert_eq!(grant(&app, &entity, &format!("u-{}", n % 3), n).await.status, StatusCode::OK);
    }
    for user in ["u-0", "u-1", "u-2"] {
        for entry in ledger(&app, &entity, user).await {
            expected.insert(format!("evt_{}", entry["entryId"].as_str().unwrap_or_default()));
        }
    }
    assert_eq!(expected.len(), 6);
    let batch = events.records().await;

    let first = events.invoke(batch.clone()).await;
    assert!(handed_back(&[first]).is_empty());
    assert_delivered_once(&receiver, "once", &expected);
    let again = events.invoke(batch).await;
    assert!(handed_back(&[again]).is_empty());
    events.tick().await;
    assert_delivered_once(&receiver, "once", &expected);
    events.assert_declared_actions();
}

/// A batch with many changes of one account reads what they share once (the user's settings,
/// the account's low-balance state, the account item to move its journal), records an event
/// no endpoint wants without reading it first, and a spend nobody subscribes to not at all: a
/// hot account's batch costs a few reads, not a few per change.
#[tokio::test]
async fn a_batch_reads_once_what_its_changes_of_one_account_share() {
    // With the grant, one record more than a whole number of moves: one left in the journal.
    const SPENDS: usize = 4 * shared::accounts::MOVE_EVERY;
    let app = TestApp::start().await;
    let events = Events::new(&app).await;
    let entity = app.entity(&[]).await;
    set_threshold(&app, &entity, 1).await;
    assert_eq!(grant(&app, &entity, "u-1", 100).await.status, StatusCode::OK);
    for _ in 0..SPENDS {
        assert_eq!(spend(&app, &entity, "u-1", 1).await.status, StatusCode::OK);
    }
    assert!(journal_len(&app, &entity, "u-1").await > 0, "a journal left for the dispatcher to move");
    let batch = events.records().await;
    let before = events.recorder.actions().len();

    assert!(handed_back(&[events.invoke(batch).await]).is_empty());
    let actions = events.recorder.actions();
    let reads = actions[before..].iter().filter(|a| matches!(**a, "GetItem" | "Query" | "BatchGetItem")).count();
    // The endpoints (1), the entity's and the user's thresholds (2), the alert state (1), the
    // account item (1) and its journal's reads while moving it (2 at most).
    assert!(reads <= 7, "{reads} reads for {} changes: {:?}", SPENDS + 1, &actions[before..]);
    assert_eq!(journal_len(&app, &entity, "u-1").await, 0, "the batch moved the journal");
    let ledger = app.assert_invariant(&entity.entity_id, "u-1").await;
    assert_eq!(ledger.entries.len(), SPENDS + 1);
    // A spend no endpoint subscribes to is no event (§9: `credits.spent` is opt-in): none
    // recorded, a write per spend spared; the grant's event is.
    let store = DynamoStore::new(app.dynamodb.clone(), app.table.clone());
    for entry in &ledger.entries {
        let event_id = format!("evt_{}", entry.entry_id);
        let recorded = store.get_event(&entity.entity_id, &event_id).await.expect("read event").is_some();
        assert_eq!(recorded, entry.kind == EntryType::Grant, "{:?}", entry.kind);
    }
}

/// Endpoints that answer too late cannot keep an invocation past its deadline (Lambda would
/// kill it and hand the whole batch back): attempts that would not end in time are left due,
/// and the tick delivers them.
#[tokio::test]
async fn slow_endpoints_cannot_keep_an_invocation_past_its_deadline() {
    let app = TestApp::start().await;
    // The app's clock: retries come due when the test says, not as time passes.
    let events = Events::with_clock(&app, app.clock.clone()).await;
    let receiver = Receiver::start();
    let entity = app.entity(&[]).await;
    let hooks = ["slow-a", "slow-b", "slow-c"];
    let mut endpoint_ids = Vec::new();
    for hook in hooks {
        endpoint_ids.push(endpoint(&app, &entity, &receiver, hook, Value::Null).await);
        // Every attempt answers after the sender's time-out (2 s).
        receiver.configure(hook, json!({"slow_first": 1000, "slow_seconds": 3}));
    }
    assert_eq!(grant(&app, &entity, "u-1", 5).await.status, StatusCode::OK);
    let grant_event = format!("evt_{}", ledger(&app, &entity, "u-1").await[0]["entryId"].as_str().unwrap_or_default());
    let batch = events.records().await;

    // Unbounded, the three drains would take an attempt's time-out each: 6 s.
    let budget = Duration::from_secs(5);
    let started = tokio::time::Instant::now();
    let answer = events.invoke_within(batch, budget).await;
    let took = started.elapsed();
    assert!(took < budget, "the invocation took {took:?} of its {budget:?}");
    assert!(handed_back(&[answer]).is_empty(), "every change was queued");
    let attempted: usize = hooks.iter().map(|hook| receiver.attempts(hook).len()).sum();
    assert!(attempted <= 1, "an attempt starts only if it ends in time: {attempted} started");
    let store = &events.dispatcher.store;
    for endpoint_id in &endpoint_ids {
        assert!(store.due_mark(endpoint_id).await.expect("mark").is_some(), "{endpoint_id} is left due");
    }

    for hook in hooks {
        receiver.configure(hook, json!({"slow_first": 0}));
    }
    app.clock.advance_seconds(1);
    events.tick().await;
    for hook in hooks {
        let got = receiver.verified(hook);
        assert_eq!(got.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), [grant_event.as_str()], "{hook}");
    }
}

/// One account whose journal cannot be moved (here a record this version cannot read, as in
/// a rolling deploy) is left for later; the batch is not handed back, so the accounts behind
/// it on the shard get their events.
#[tokio::test]
async fn an_account_whose_journal_cannot_move_holds_up_no_other() {
    let app = TestApp::start().await;
    let events = Events::new(&app).await;
    let receiver = Receiver::start();
    let entity = app.entity(&[]).await;
    endpoint(&app, &entity, &receiver, "others", Value::Null).await;
    assert_eq!(grant(&app, &entity, "u-bad", 5).await.status, StatusCode::OK);
    app.dynamodb
        .update_item()
        .table_name(&app.table)
        .set_key(Some(keys::account(&entity.entity_id, "u-bad").to_item()))
        .update_expression("SET journal[0] = :unreadable")
        .expression_attribute_values(":unreadable", AttributeValue::S("{\"type\": \"from-the-future\"}".into()))
        .send()
        .await
        .expect("make the journal unreadable");
    assert_eq!(grant(&app, &entity, "u-1", 7).await.status, StatusCode::OK);
    assert_eq!(ledger(&app, &entity, "u-1").await.len(), 1);

    let answer = events.invoke(events.records().await).await;
    assert!(handed_back(std::slice::from_ref(&answer)).is_empty(), "{answer}");
    let got = receiver.verified("others");
    assert_eq!(types(&got), ["credits.granted"]);
    assert_eq!(got[0].body["data"]["userId"], "u-1");
}

/// A mover's claim whose mover died (or whose claiming write's answer was lost) while no
/// further write comes: the dispatcher sees it in force and cannot wait it out in the time it
/// has, so it hands the account's change back to the stream; once the claim has lapsed, the
/// change comes again and the journal is taken over and moved, and every spend has its event.
#[tokio::test]
async fn an_orphaned_mover_claim_goes_back_to_the_stream_until_it_lapses_then_is_taken_over() {
    let app = TestApp::start().await;
    let events = Events::with_clock(&app, app.clock.clone()).await;
    let mut feed = events.feed().await;
    let receiver = Receiver::start();
    let entity = app.entity(&[]).await;
    endpoint(&app, &entity, &receiver, "orphan", json!(["credits.spent"])).await;
    let short = spends_short_of_a_move(&app, &entity, "u-1").await;
    claim_journal(&app, &entity, "u-1", app.clock_millis() + 5_000).await;

    let answers = events.pump(&mut feed, SHORT_BUDGET).await;
    assert_eq!(handed_back(&answers).len(), 1, "the account's change goes back to the stream: {answers:?}");
    assert_eq!(journal_len(&app, &entity, "u-1").await, short, "a claim in force is left to its mover");

    app.clock.advance_seconds(7);
    let answers = events.pump(&mut feed, TEST_INVOCATION_BUDGET).await;
    assert!(handed_back(&answers).is_empty(), "{answers:?}");
    assert_eq!(journal_len(&app, &entity, "u-1").await, 0, "taken over and moved");
    let expected = spent_event_ids(&app, &entity, "u-1").await;
    assert_eq!(expected.len(), short);
    assert_delivered_once(&receiver, "orphan", &expected);
    events.assert_declared_actions();
}

/// A claim that ends within the invocation is waited out there, and the journal taken over
/// (the dispatcher's clock is the system clock here: its wait is real).
#[tokio::test]
async fn a_mover_claim_that_lapses_within_the_invocation_is_taken_over_in_it() {
    let app = TestApp::start().await;
    let events = Events::new(&app).await;
    let mut feed = events.feed().await;
    let receiver = Receiver::start();
    let entity = app.entity(&[]).await;
    endpoint(&app, &entity, &receiver, "lapsing", json!(["credits.spent"])).await;
    let short = spends_short_of_a_move(&app, &entity, "u-1").await;
    claim_journal(&app, &entity, "u-1", SystemClock.now_millis() + 1_500).await;

    let answers = events.pump(&mut feed, TEST_INVOCATION_BUDGET).await;
    assert!(handed_back(&answers).is_empty(), "{answers:?}");
    assert_eq!(journal_len(&app, &entity, "u-1").await, 0, "taken over and moved");
    let expected = spent_event_ids(&app, &entity, "u-1").await;
    assert_eq!(expected.len(), short);
    assert_delivered_once(&receiver, "lapsing", &expected);
}

/// The review's case (journal-2026-12 §2): the spend that fills the journal to a move claims it with its own
/// write, the answer to that write is lost, and no write follows. Whoever moves the journal
/// (the writer that recognises its claim, or the dispatcher once the claim lapses), the
/// journal ends up empty and each spend has its event, once.
#[tokio::test]
async fn a_claiming_spend_whose_answer_was_lost_still_gets_every_event() {
    let proxy = emulator::proxy(&[]);
    let app = TestApp::behind(&proxy.endpoint).await;
    let events = Events::with_clock(&app, app.clock.clone()).await;
    let mut feed = events.feed().await;
    let receiver = Receiver::start();
    let entity = app.entity(&[]).await;
    endpoint(&app, &entity, &receiver, "lost", json!(["credits.spent"])).await;
    let short = spends_short_of_a_move(&app, &entity, "u-1").await;
    control(&proxy.endpoint, "POST", "/_proxy/drop-next", r#"{"op": "UpdateItem", "count": 1}"#);
    let claiming = spend(&app, &entity, "u-1", 1).await;
    let stats: Value = serde_json::from_str(&control(&proxy.endpoint, "GET", "/_proxy/stats", "")).unwrap_or_default();
    assert_eq!(stats["by_target"]["UpdateItem"]["drop"], 1, "the claiming write's answer was lost: {stats}");

    // While the claim is in force, then once it has lapsed (no write in between); the tick
    // delivers what the short invocation had no time to.
    events.pump(&mut feed, SHORT_BUDGET).await;
    app.clock.advance_seconds(7);
    let answers = events.pump(&mut feed, TEST_INVOCATION_BUDGET).await;
    assert!(handed_back(&answers).is_empty(), "{answers:?}");
    events.tick().await;
    assert_eq!(journal_len(&app, &entity, "u-1").await, 0);
    let expected = spent_event_ids(&app, &entity, "u-1").await;
    assert_eq!(expected.len(), short + 1, "the claiming spend landed (answered {})", claiming.status);
    assert_delivered_once(&receiver, "lost", &expected);
}
