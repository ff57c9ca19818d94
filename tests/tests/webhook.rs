//! The Stripe webhook: signatures over the raw body, events acted on once, refunds and
//! disputes moving credits. Events are real ones from the Stripe stand-in, signed here the
//! way Stripe signs them.

use axum::http::{Method, StatusCode};
use hmac::{Hmac, Mac};
use integration_tests::fixtures::EntityFixture;
use integration_tests::stripe::sign;
use integration_tests::{STRIPE_WEBHOOK_SECRET, TestApp, TestResponse, concurrently};
use serde_json::{Value, json};
use sha2::Sha256;

const TIER: &str = "pack";

fn now(app: &TestApp) -> i64 {
    app.clock_millis() / 1000
}

/// The stand-in's newest event of `kind` about `object_field == id`, as raw JSON.
fn event(app: &TestApp, kind: &str, field: &str, id: &str) -> String {
    let found = app.stripe_events(kind).into_iter().find(|e| e["data"]["object"][field] == id);
    found.unwrap_or_else(|| panic!("no {kind} event for {id}")).to_string()
}

async fn shop(app: &TestApp) -> EntityFixture {
    let entity = app.entity(&[]).await;
    app.tier(&entity, json!({"creditTierId": TIER, "name": "Pack", "credits": 100, "bonusCredits": 20, "price": 1000}))
        .await;
    entity
}

/// A payment made with `method` through Q5; returns its PaymentIntent id.
async fn paid(app: &TestApp, entity: &EntityFixture, user: &str, method: &str) -> String {
    let response = app
        .request(Method::POST, "/api/payment/pay")
        .headers(&entity.server())
        .json(json!({"id": method, "product": {"creditTierId": TIER}, "info": {"userId": user, "entityId": entity.entity_id}}))
        .send()
        .await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    response.data()["paymentIntentId"].as_str().unwrap().to_owned()
}

/// An intent confirmed at Stripe but not yet approved through the service.
async fn confirmed_elsewhere(app: &TestApp, entity: &EntityFixture, user: &str) -> String {
    let created = app
        .request(Method::POST, &entity.path(&format!("/users/{user}/create-payment-intent")))
        .headers(&entity.server())
        .json(json!({"creditTierId": TIER}))
        .send()
        .await;
    let intent = created.data()["paymentIntentId"].as_str().unwrap().to_owned();
    let confirmed =
        app.stripe_api("POST", &format!("/v1/payment_intents/{intent}/confirm"), "payment_method=pm_card_visa");
    assert_eq!(confirmed["status"], "succeeded");
    intent
}

#[tokio::test]
async fn signatures_are_checked_over_the_raw_body() {
    let app = TestApp::start().await;
    let entity = shop(&app).await;
    let intent = confirmed_elsewhere(&app, &entity, "u-sig").await;
    let payload = event(&app, "payment_intent.succeeded", "id", &intent);
    let before = app.item_count().await;
    let post = |signature: Option<String>, body: String| {
        let request = app.request(Method::POST, "/api/stripe/webhook");
        let request = match signature {
            Some(signature) => request.header("stripe-signature", &signature),
            None => request,
        };
        request.raw(body).send()
    };
    let t = now(&app);
    let valid = sign(&payload, STRIPE_WEBHOOK_SECRET, t);
    let rejected = [
        ("wrong secret", Some(sign(&payload, "whsec_other", t)), payload.clone()),
        ("tampered body", Some(valid.clone()), payload.replace("\"amount\":1000", "\"amount\":1")),
        ("stale timestamp", Some(sign(&payload, STRIPE_WEBHOOK_SECRET, t - 301)), payload.clone()),
        ("missing header", None, payload.clone()),
        ("garbage header", Some("nonsense".into()), payload.clone()),
    ];
    for (case, signature, body) in rejected {
        let response = post(signature, body).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{case}");
        assert!(response.error_message().contains("Stripe-Signature"), "{case}: {}", response.error_message());
    }
    assert_eq!(app.item_count().await, before, "rejected events write nothing");

    let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec_old").unwrap();
    mac.update(format!("{t}.{payload}").as_bytes());
    let stale_v1: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let two = format!("t={t},v1={stale_v1},{}", valid.split(',').nth(1).unwrap());
    let accepted = post(Some(two), payload.clone()).await;
    assert_eq!(accepted.status, StatusCode::OK, "{:?}", accepted.body);
    assert_eq!(app.assert_invariant(&entity.entity_id, "u-sig").await.account.balance, 120);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_event_delivered_five_times_in_a_row_and_at_once_has_one_effect() {
    let app = TestApp::start().await;
    let entity = shop(&app).await;
    let first = confirmed_elsewhere(&app, &entity, "u-dup").await;
    let payload = event(&app, "payment_intent.succeeded", "id", &first);
    for _ in 0..5 {
        assert_eq!(app.deliver(&payload).await.status, StatusCode::OK);
    }
    let second = confirmed_elsewhere(&app, &entity, "u-dup").await;
    let payload = event(&app, "payment_intent.succeeded", "id", &second);
    let responses = concurrently((0..5).map(|_| app.deliver(&payload))).await;
    assert!(responses.iter().all(|r| r.status == StatusCode::OK));
    let ledger = app.assert_invariant(&entity.entity_id, "u-dup").await;
    assert_eq!((ledger.account.balance, ledger.entries.len()), (240, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_webhook_and_approve_racing_credit_once() {
    let app = TestApp::start().await;
    let entity = shop(&app).await;
    let intent = confirmed_elsewhere(&app, &entity, "u-race").await;
    let payload = event(&app, "payment_intent.succeeded", "id", &intent);
    let mut racers: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = TestResponse> + Send>>> = Vec::new();
    for _ in 0..5 {
        racers.push(Box::pin(app.deliver(&payload)));
        let approve = app
            .request(Method::POST, &entity.path("/users/u-race/approve-payment"))
            .headers(&entity.server())
            .json(json!({"paymentIntentId": intent}))
            .send();
        racers.push(Box::pin(approve));
    }
    let responses = concurrently(racers).await;
    assert!(
        responses.iter().all(|r| r.status == StatusCode::OK),
        "{:?}",
        responses.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    let ledger = app.assert_invariant(&entity.entity_id, "u-race").await;
    assert_eq!((ledger.account.balance, ledger.entries.len()), (120, 1));
}

#[tokio::test]
async fn partial_refunds_reverse_in_proportion_and_never_more_than_credited() {
    let app = TestApp::start().await;
    let entity = shop(&app).await;
    let intent = paid(&app, &entity, "u-ref", "pm_card_visa").await;
    app.stripe_api("POST", "/v1/refunds", &format!("payment_intent={intent}&amount=300"));
    let thirty = event(&app, "charge.refunded", "payment_intent", &intent);
    assert_eq!(app.deliver(&thirty).await.status, StatusCode::OK);
    assert_eq!(app.assert_invariant(&entity.entity_id, "u-ref").await.account.balance, 84, "30% of 120 reversed");
    app.stripe_api("POST", "/v1/refunds", &format!("payment_intent={intent}&amount=700"));
    let full = event(&app, "charge.refunded", "payment_intent", &intent);
    assert_ne!(full, thirty);
    assert_eq!(app.deliver(&full).await.status, StatusCode::OK);
    assert_eq!(app.deliver(&thirty).await.status, StatusCode::OK, "a late, older event changes nothing");
    let ledger = app.assert_invariant(&entity.entity_id, "u-ref").await;
    assert_eq!(ledger.account.balance, 0);
    assert_eq!(ledger.account.lifetime_reversed, 120);
    let kinds: Vec<_> = ledger.entries.iter().rev().map(|e| (e.kind.as_str(), e.credits)).collect();
    assert_eq!(kinds, [("purchase", 120), ("reversal", -36), ("reversal", -84)]);
}

#[tokio::test]
async fn a_refund_after_spending_goes_negative_until_a_new_purchase() {
    let app = TestApp::start().await;
    let entity = shop(&app).await;
    let intent = paid(&app, &entity, "u-neg", "pm_card_visa").await;
    let spend = |credits: u64| {
        app.request(Method::POST, &entity.path("/users/u-neg/decrement-credits"))
            .headers(&entity.server())
            .json(json!({"credits": credits}))
            .send()
    };
    assert_eq!(spend(120).await.status, StatusCode::OK);
    app.stripe_api("POST", "/v1/refunds", &format!("payment_intent={intent}"));
    assert_eq!(app.deliver(&event(&app, "charge.refunded", "payment_intent", &intent)).await.status, StatusCode::OK);
    let read = app.request(Method::GET, &entity.path("/users/u-neg/credits")).headers(&entity.server()).send().await;
    assert_eq!((read.data()["balance"].as_i64(), read.data()["available"].as_i64()), (Some(-120), Some(-120)));
    let blocked = spend(1).await;
    assert_eq!(blocked.status, StatusCode::PAYMENT_REQUIRED);
    let hold = app
        .request(Method::POST, &entity.path("/users/u-neg/holds"))
        .headers(&entity.server())
        .json(json!({"credits": 1}))
        .send()
        .await;
    assert_eq!(hold.status, StatusCode::PAYMENT_REQUIRED);
    paid(&app, &entity, "u-neg", "pm_card_visa").await;
    paid(&app, &entity, "u-neg", "pm_card_visa").await;
    assert_eq!(spend(1).await.status, StatusCode::OK);
    assert_eq!(app.assert_invariant(&entity.entity_id, "u-neg").await.account.balance, 119);
}

#[tokio::test]
async fn a_dispute_created_then_won_nets_to_zero() {
    let app = TestApp::start().await;
    let entity = shop(&app).await;
    let intent = paid(&app, &entity, "u-disp", "pm_card_createDispute").await;
    let created = event(&app, "charge.dispute.created", "payment_intent", &intent);
    assert_eq!(app.deliver(&created).await.status, StatusCode::OK);
    assert_eq!(app.assert_invariant(&entity.entity_id, "u-disp").await.account.balance, 0);
    let dispute: Value = serde_json::from_str(&created).unwrap();
    let dispute_id = dispute["data"]["object"]["id"].as_str().unwrap();
    app.stripe_api("POST", &format!("/v1/disputes/{dispute_id}"), "evidence[uncategorized_text]=winning_evidence");
    let closed = event(&app, "charge.dispute.closed", "id", dispute_id);
    assert_eq!(app.deliver(&closed).await.status, StatusCode::OK);
    assert_eq!(app.deliver(&closed).await.status, StatusCode::OK);
    let ledger = app.assert_invariant(&entity.entity_id, "u-disp").await;
    let kinds: Vec<_> = ledger.entries.iter().rev().map(|e| (e.kind.as_str(), e.credits)).collect();
    assert_eq!(kinds, [("purchase", 120), ("reversal", -120), ("regrant", 120)]);
    assert_eq!((ledger.account.balance, ledger.account.lifetime_reversed), (120, 0));
}

#[tokio::test]
async fn out_of_order_unknown_and_foreign_events_end_right() {
    let app = TestApp::start().await;
    let entity = shop(&app).await;
    // Refunded before the service heard that the payment succeeded.
    let intent = confirmed_elsewhere(&app, &entity, "u-ooo").await;
    app.stripe_api("POST", "/v1/refunds", &format!("payment_intent={intent}&amount=500"));
    assert_eq!(app.deliver(&event(&app, "charge.refunded", "payment_intent", &intent)).await.status, StatusCode::OK);
    assert_eq!(app.deliver(&event(&app, "payment_intent.succeeded", "id", &intent)).await.status, StatusCode::OK);
    let ledger = app.assert_invariant(&entity.entity_id, "u-ooo").await;
    assert_eq!(ledger.account.balance, 60, "half refunded");

    let unknown = json!({"id": "evt_unknown_1", "object": "event", "type": "customer.created", "created": now(&app), "livemode": false,
        "pending_webhooks": 1, "api_version": "2025-01-27.acacia", "request": null, "data": {"object": {"id": "cus_1", "object": "customer"}}});
    let response = app.deliver(&unknown.to_string()).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.data()["handled"], false);
    let foreign = app.stripe_api(
        "POST",
        "/v1/payment_intents",
        "amount=500&currency=usd&payment_method=pm_card_visa&confirm=true&automatic_payment_methods[enabled]=true&automatic_payment_methods[allow_redirects]=never",
    );
    let foreign_id = foreign["id"].as_str().unwrap();
    let response = app.deliver(&event(&app, "payment_intent.succeeded", "id", foreign_id)).await;
    assert_eq!((response.status, response.data()["handled"].as_bool()), (StatusCode::OK, Some(false)));
}

/// A Stripe event around `object`, as Stripe would sign and send it.
fn forged(app: &TestApp, kind: &str, object: Value) -> String {
    json!({"id": format!("evt_forged_{}", ulid::Ulid::new()), "object": "event", "type": kind, "created": now(app),
        "livemode": false, "pending_webhooks": 1, "api_version": "2025-03-31.basil", "request": null,
        "data": {"object": object}})
    .to_string()
}

async fn balance(app: &TestApp, entity: &EntityFixture, user: &str) -> i64 {
    app.assert_invariant(&entity.entity_id, user).await.account.balance
}

#[tokio::test]
async fn signed_events_for_payments_this_service_never_made_credit_nothing() {
    let app = TestApp::start().await;
    let entity = shop(&app).await;
    let generous = json!({"entity_id": entity.entity_id, "user_id": "u-mint", "credit_tier_id": TIER,
        "credits": "1000000", "bonus_credits": "0"});
    let unknown_intent = json!({"id": "pi_made_up_1", "object": "payment_intent", "status": "succeeded",
        "amount": 1, "currency": "usd", "metadata": generous});
    let unknown_invoice = json!({"id": "in_made_up_1", "object": "invoice", "status": "paid", "amount_paid": 1,
        "currency": "usd", "subscription": "sub_made_up_1",
        "parent": {"type": "subscription_details", "subscription_details": {"subscription": "sub_made_up_1", "metadata": generous}},
        "subscription_details": {"metadata": generous}, "lines": {"data": []}});
    let unknown_refund = json!({"id": "ch_made_up_1", "object": "charge", "payment_intent": "pi_made_up_1",
        "amount": 1, "amount_refunded": 1, "currency": "usd", "metadata": generous});
    let unknown_dispute = json!({"id": "dp_made_up_1", "object": "dispute", "payment_intent": "pi_made_up_1",
        "charge": "ch_made_up_1", "amount": 1, "currency": "usd", "status": "needs_response"});
    let unknown_deleted =
        json!({"id": "sub_made_up_1", "object": "subscription", "status": "canceled", "metadata": generous});
    let events = [
        forged(&app, "payment_intent.succeeded", unknown_intent),
        forged(&app, "invoice.paid", unknown_invoice),
        forged(&app, "charge.refunded", unknown_refund),
        forged(&app, "charge.dispute.created", unknown_dispute),
        forged(&app, "customer.subscription.deleted", unknown_deleted),
    ];
    for event in events {
        let response = app.deliver(&event).await;
        assert_eq!((response.status, response.data()["handled"].as_bool()), (StatusCode::OK, Some(false)), "{event}");
    }
    assert_eq!(balance(&app, &entity, "u-mint").await, 0);
}

#[tokio::test]
async fn events_that_disagree_with_the_payment_record_credit_nothing() {
    let app = TestApp::start().await;
    let entity = shop(&app).await;
    let other = shop(&app).await;
    let intent = confirmed_elsewhere(&app, &entity, "u-rec").await;
    let genuine: Value = serde_json::from_str(&event(&app, "payment_intent.succeeded", "id", &intent)).unwrap();
    let object = &genuine["data"]["object"];
    let altered = |path: &[&str], value: Value| {
        let mut object = object.clone();
        let (last, parents) = path.split_last().unwrap();
        parents.iter().fold(&mut object, |o, p| &mut o[*p])[*last] = value;
        forged(&app, "payment_intent.succeeded", object)
    };
    let cases = [
        ("amount", altered(&["amount"], json!(1))),
        ("currency", altered(&["currency"], json!("eur"))),
        ("entity", altered(&["metadata", "entity_id"], json!(other.entity_id))),
        ("user", altered(&["metadata", "user_id"], json!("u-thief"))),
    ];
    for (case, event) in cases {
        let response = app.deliver(&event).await;
        assert_eq!((response.status, response.data()["handled"].as_bool()), (StatusCode::OK, Some(false)), "{case}");
    }
    assert_eq!(balance(&app, &entity, "u-rec").await, 0);
    assert_eq!(balance(&app, &entity, "u-thief").await, 0);
    assert_eq!(balance(&app, &other, "u-rec").await, 0);
    let response = app.deliver(&genuine.to_string()).await;
    assert_eq!(response.data()["handled"], true, "the genuine event still credits");
    assert_eq!(balance(&app, &entity, "u-rec").await, 120);
}
