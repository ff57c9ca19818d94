//! Recurring tiers: a subscription credits one period per paid invoice, exactly once, until
//! it is cancelled. Time moves with the stand-in's test clock (`clock_default`), as it would
//! with Stripe's test clocks; this test runs its own stand-in so no other test shares it.

use axum::http::{Method, StatusCode};
use integration_tests::TestApp;
use integration_tests::emulator;
use integration_tests::stripe::sign;
use serde_json::{Value, json};
use stripe_webhook::{EventObject, Webhook};

const MONTH_AND_A_DAY: i64 = 32 * 24 * 3600;

fn advance(app: &TestApp) {
    let clock = app.stripe_api("GET", "/v1/test_helpers/test_clocks/clock_default", "");
    let to = clock["frozen_time"].as_i64().expect("frozen_time") + MONTH_AND_A_DAY;
    let advanced =
        app.stripe_api("POST", "/v1/test_helpers/test_clocks/clock_default/advance", &format!("frozen_time={to}"));
    assert_eq!(advanced["status"], "ready", "{advanced}");
}

fn subscription_of(event: &Value) -> &str {
    let object = &event["data"]["object"];
    object["parent"]["subscription_details"]["subscription"]
        .as_str()
        .or_else(|| object["subscription"].as_str())
        .unwrap_or_default()
}

/// Delivers every `invoice.paid` of `subscription` twice; returns how many invoices there were.
async fn deliver_invoices(app: &TestApp, subscription: &str) -> usize {
    let invoices: Vec<String> = app
        .stripe_events("invoice.paid")
        .iter()
        .filter(|e| subscription_of(e) == subscription)
        .map(Value::to_string)
        .collect();
    for payload in invoices.iter().chain(invoices.iter()) {
        let response = app.deliver(payload).await;
        assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    }
    invoices.len()
}

#[tokio::test]
async fn a_monthly_tier_credits_once_per_paid_period_until_cancelled() {
    let standin = emulator::spawn("tests/stripe_standin/server.py", &[]);
    let app = TestApp::with_stripe_at(&standin.endpoint).await;
    let entity = app.entity(&[]).await;
    app.tier(
        &entity,
        json!({"creditTierId": "monthly", "name": "Monthly", "credits": 100, "price": 500, "recurring": "month"}),
    )
    .await;
    let user = app.session(&entity, "sub-1").await;
    let buy = json!({"id": "pm_card_visa", "product": {"creditTierId": "monthly"}, "cardData": {"email": "sub@example.com"},
                     "info": {"userId": "sub-1", "entityId": entity.entity_id}});
    let bought = app.request(Method::POST, "/api/payment/pay").headers(&user).json(buy.clone()).send().await;
    assert_eq!(bought.status, StatusCode::OK, "{:?}", bought.body);
    let data = bought.data();
    let subscription = data["subscriptionId"].as_str().unwrap().to_owned();
    assert!(subscription.starts_with("sub_"));
    assert!(data.get("paymentIntentId").is_none(), "a subscription is paid by invoices: {data}");
    assert!(data["invoiceId"].as_str().is_some_and(|id| id.starts_with("in_")));
    assert_eq!((data["status"].as_str(), data["credited"].as_u64()), (Some("succeeded"), Some(100)));
    assert_eq!(data["account"]["balance"], 100);
    let again = app.request(Method::POST, "/api/payment/pay").headers(&user).json(buy).send().await;
    assert_eq!((again.status, again.error_code()), (StatusCode::CONFLICT, "ALREADY_EXISTS"));
    let intent = app
        .request(Method::POST, &entity.path("/users/sub-1/create-payment-intent"))
        .headers(&user)
        .json(json!({"creditTierId": "monthly"}))
        .send()
        .await;
    assert_eq!(intent.status, StatusCode::BAD_REQUEST);

    let tiers = app.request(Method::GET, &entity.path("/users/sub-1/credit-tiers")).headers(&user).send().await;
    let view = &tiers.data()[0];
    assert_eq!(view["subscription"]["status"], "active");
    assert_eq!(view["subscription"]["subscriptionId"], subscription.as_str());
    let first_end = view["subscription"]["currentPeriodEnd"].as_str().unwrap().to_owned();
    assert_eq!(view["purchaseCount"], 1);

    // The first invoice arrives by webhook too (twice): still one credit.
    assert_eq!(deliver_invoices(&app, &subscription).await, 1);
    assert_eq!(app.assert_invariant(&entity.entity_id, "sub-1").await.account.balance, 100);
    advance(&app);
    assert_eq!(deliver_invoices(&app, &subscription).await, 2);
    advance(&app);
    assert_eq!(deliver_invoices(&app, &subscription).await, 3);
    let ledger = app.assert_invariant(&entity.entity_id, "sub-1").await;
    assert_eq!((ledger.account.balance, ledger.entries.len()), (300, 3), "three periods, three credits");
    let tiers = app.request(Method::GET, &entity.path("/users/sub-1/credit-tiers")).headers(&user).send().await;
    assert!(tiers.data()[0]["subscription"]["currentPeriodEnd"].as_str().unwrap() > first_end.as_str());
    assert_eq!(tiers.data()[0]["purchaseCount"], 3);

    let cancelled = app
        .request(Method::POST, &entity.path("/users/sub-1/credit-tiers/monthly/cancel"))
        .headers(&user)
        .json(json!({}))
        .send()
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
    assert_eq!(cancelled.data()["status"], "canceling");
    advance(&app);
    assert_eq!(deliver_invoices(&app, &subscription).await, 3, "no fourth invoice");
    let ended = app
        .stripe_events("customer.subscription.deleted")
        .into_iter()
        .find(|e| e["data"]["object"]["id"] == subscription.as_str());
    let ended = ended.expect("the subscription ended at Stripe").to_string();
    assert_eq!(app.deliver(&ended).await.status, StatusCode::OK);
    let tiers = app.request(Method::GET, &entity.path("/users/sub-1/credit-tiers")).headers(&user).send().await;
    assert_eq!(tiers.data()[0]["subscription"]["status"], "ended");
    let again = app
        .request(Method::POST, &entity.path("/users/sub-1/credit-tiers/monthly/cancel"))
        .headers(&user)
        .json(json!({}))
        .send()
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(app.assert_invariant(&entity.entity_id, "sub-1").await.account.balance, 300);
    every_event_parses_as_async_stripe_types(&app, &["invoice.*", "customer.subscription.*"]);
}

/// Every event of `kinds` the stand-in sent, signed, passes async-stripe's own
/// `Webhook::construct_event` and comes out as its typed object, not `Unknown`.
fn every_event_parses_as_async_stripe_types(app: &TestApp, kinds: &[&str]) {
    let secret = "whsec_typed_parse";
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let events: Vec<Value> = kinds.iter().flat_map(|kind| app.stripe_events(kind)).collect();
    let mut types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    types.sort_unstable();
    types.dedup();
    assert!(
        ["invoice.created", "invoice.paid", "customer.subscription.created", "customer.subscription.deleted"]
            .iter()
            .all(|kind| types.contains(kind)),
        "{types:?}"
    );
    for event in &events {
        let payload = event.to_string();
        let signature = sign(&payload, secret, now as i64);
        let parsed = Webhook::construct_event(&payload, &signature, secret)
            .unwrap_or_else(|err| panic!("{} does not parse: {err}", event["type"]));
        assert!(!matches!(parsed.data.object, EventObject::Unknown(_)), "{} parsed as Unknown", event["type"]);
    }
}
