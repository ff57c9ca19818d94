//! The Quest face (§8): Quest's field names in answers and refusals, refusals in Quest's
//! envelope (`{"success": false, "error": "<message>", "code"}`), nothing written by a
//! refused request, and the one path both faces share answering each in its own envelope.

use axum::http::{Method, StatusCode};
use integration_tests::fixtures::{EntityFixture, Headers};
use integration_tests::{TestApp, TestResponse, concurrently};
use serde_json::{Value, json};

/// Quest's envelope: `error` a string naming `field`.
fn assert_quest_error(response: &TestResponse, status: StatusCode, field: &str) {
    assert_eq!(response.status, status, "{}", response.body);
    assert_eq!(response.body["success"], false, "{}", response.body);
    let error = response.body["error"].as_str().unwrap_or_else(|| panic!("error is not a string: {}", response.body));
    assert!(
        error
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '.')
            .any(|w| w == field || w.ends_with(&format!(".{field}"))),
        "{error:?} does not name {field}"
    );
}

fn quest_headers(entity: &EntityFixture, headers: Headers) -> Headers {
    let mut headers = headers;
    headers.push(("entityId".into(), entity.entity_id.clone()));
    headers.push(("Content-Type".into(), "application/json".into()));
    headers.push(("User-Agent".into(), "BROWSER".into()));
    headers
}

#[tokio::test]
async fn tiers_in_quests_names_both_ways() {
    let app = TestApp::start().await;
    let entity = app.entity(&["owner"]).await;
    let owner = quest_headers(&entity, app.session(&entity, "owner").await);
    let tiers = entity.path("/credits-tiers");
    let added = app
        .request(Method::POST, &tiers)
        .headers(&owner)
        .json(json!({"creditsAmount": 100, "extraCreditsAmount": 0, "price": 999, "creditsTierId": "t1",
                     "creditsTierName": "Starter", "recurringTimePeriod": "ONETIME"}))
        .send()
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    let tier = added.data();
    assert_eq!(
        (&tier["creditsTierId"], &tier["creditsTierName"], &tier["creditsAmount"], &tier["recurringTimePeriod"]),
        (&json!("t1"), &json!("Starter"), &json!(100), &json!("ONETIME"))
    );
    assert_eq!(tier["recurring"], "none");

    let weekly = app
        .request(Method::PATCH, &tiers)
        .headers(&owner)
        .json(json!({"creditsTierId": "t1", "recurringTimePeriod": "WEEKLY", "price": 1099}))
        .send()
        .await;
    assert_eq!(weekly.status, StatusCode::OK, "{}", weekly.body);
    assert_eq!((&weekly.data()["recurringTimePeriod"], &weekly.data()["version"]), (&json!("WEEKLY"), &json!(2)));

    // A bodiless GET with Content-Type, React's ?userId=, Quest's objects.
    let listed = app.request(Method::GET, &format!("{tiers}?userId=owner")).headers(&owner).send().await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(listed.data()[0]["recurring"], "week");
    assert_eq!(listed.data()[0]["price"], 1099);
}

#[tokio::test]
async fn refusals_name_quests_fields_in_quests_envelope_and_write_nothing() {
    let app = TestApp::start().await;
    let entity = app.entity(&["owner"]).await;
    let other = app.entity(&[]).await;
    let owner = quest_headers(&entity, app.session(&entity, "owner").await);
    let user = quest_headers(&entity, app.session(&entity, "u-1").await);
    let tiers = entity.path("/credits-tiers");
    let before = app.item_count().await;

    let add = |body: Value| app.request(Method::POST, &tiers).headers(&owner).json(body).send();
    let full = json!({"creditsAmount": 100, "price": 999, "creditsTierId": "t1", "creditsTierName": "S"});
    for (field, body) in [
        ("creditsAmount", json!({"price": 999, "creditsTierId": "t1", "creditsTierName": "S"})),
        ("creditsAmount", json!({"creditsAmount": "1", "price": 999, "creditsTierId": "t1", "creditsTierName": "S"})),
        ("price", json!({"creditsAmount": 1, "price": 9.5, "creditsTierId": "t1", "creditsTierName": "S"})),
        ("creditsTierName", json!({"creditsAmount": 1, "price": 9, "creditsTierId": "t1"})),
        (
            "extraCreditsAmount",
            json!({"creditsTierId": "t2", "creditsAmount": 1, "price": 9, "creditsTierName": "S", "extraCreditsAmount": "2"}),
        ),
        (
            "recurringTimePeriod",
            json!({"creditsTierId": "t2", "creditsAmount": 1, "price": 9, "creditsTierName": "S", "recurringTimePeriod": "HOURLY"}),
        ),
        // A rule of the use case, renamed: the pack must hold credits.
        ("creditsAmount", json!({"creditsTierId": "t2", "creditsAmount": 0, "price": 9, "creditsTierName": "S"})),
        // Our name is not Quest's.
        ("credits", json!({"creditsTierId": "t2", "credits": 1, "price": 9, "creditsTierName": "S"})),
    ] {
        assert_quest_error(&add(body).await, StatusCode::BAD_REQUEST, field);
    }
    let patch = app.request(Method::PATCH, &tiers).headers(&owner).json(json!({"price": 5})).send().await;
    assert_quest_error(&patch, StatusCode::BAD_REQUEST, "creditsTierId");

    // A plain user may not manage tiers; another entity's id; a header naming another entity.
    let as_user = app.request(Method::POST, &tiers).headers(&user).json(full.clone()).send().await;
    assert_eq!((as_user.status, &as_user.body["success"]), (StatusCode::FORBIDDEN, &json!(false)));
    assert!(as_user.body["error"].is_string());
    let other_path =
        app.request(Method::POST, &other.path("/credits-tiers")).headers(&owner).json(full.clone()).send().await;
    assert_eq!(other_path.status, StatusCode::FORBIDDEN, "{}", other_path.body);
    assert!(other_path.body["error"].is_string());
    let mut wrong_header = owner.clone();
    wrong_header.retain(|(name, _)| name != "entityId");
    wrong_header.push(("entityid".into(), other.entity_id.clone()));
    let header = app.request(Method::POST, &tiers).headers(&wrong_header).json(full.clone()).send().await;
    assert_eq!(header.status, StatusCode::FORBIDDEN, "{}", header.body);
    assert!(header.body["error"].is_string());

    // User routes: the entity in the query, spends named creditsAmount.
    let credits = "/api/users/u-1/decrement-credits";
    let no_entity = app.request(Method::POST, credits).headers(&user).json(json!({"creditsAmount": 1})).send().await;
    assert_quest_error(&no_entity, StatusCode::BAD_REQUEST, "entityId");
    let spend = |body: Value| {
        app.request(Method::POST, &format!("{credits}?entityId={}", entity.entity_id)).headers(&user).json(body).send()
    };
    assert_quest_error(&spend(json!({})).await, StatusCode::BAD_REQUEST, "creditsAmount");
    assert_quest_error(&spend(json!({"creditsAmount": 1.5})).await, StatusCode::BAD_REQUEST, "creditsAmount");
    let overspend = spend(json!({"creditsAmount": 5})).await;
    assert_eq!(overspend.status, StatusCode::PAYMENT_REQUIRED, "{}", overspend.body);
    assert!(overspend.body["error"].as_str().is_some_and(|e| e.contains("credits")), "{}", overspend.body);

    // Payments: buy-credits and approve-payment name intentId and creditsTierId.
    let buy = format!("/api/users/u-1/buy-credits?entityId={}", entity.entity_id);
    let no_intent = app.request(Method::POST, &buy).headers(&user).json(json!({"creditsTierId": "t1"})).send().await;
    assert_quest_error(&no_intent, StatusCode::BAD_REQUEST, "intentId");
    let bad_intent = app
        .request(Method::POST, &buy)
        .headers(&user)
        .json(json!({"creditsTierId": "t1", "intentId": "x"}))
        .send()
        .await;
    assert_quest_error(&bad_intent, StatusCode::BAD_REQUEST, "intentId");
    let unknown = app
        .request(Method::POST, &buy)
        .headers(&user)
        .json(json!({"creditsTierId": "t1", "intentId": "pi_unknown"}))
        .send()
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);
    assert!(unknown.body["error"].is_string());
    let approve =
        app.request(Method::POST, &entity.path("/approve-payment")).headers(&user).json(json!({})).send().await;
    assert_quest_error(&approve, StatusCode::BAD_REQUEST, "intentId");

    // An unknown method on a Quest path is refused in Quest's envelope too.
    let delete = app.request(Method::DELETE, &tiers).headers(&owner).send().await;
    assert_eq!(delete.body["success"], false, "{}", delete.body);

    assert_eq!(app.item_count().await, before, "a refused Quest request wrote something");
}

#[tokio::test]
async fn the_shared_intent_path_answers_each_face_in_its_own_envelope() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    let user = quest_headers(&entity, app.session(&entity, "u-1").await);
    let path = entity.path("/users/u-1/create-payment-intent");
    app.tier(&entity, json!({"creditTierId": "t1", "name": "Starter", "credits": 100, "price": 999})).await;

    let quest = |intent: Value| {
        let body = json!({"cardData": {"email": "a@b.co", "name": "A",
                           "address": {"country": "US", "postal_code": 94107, "city": "SF", "state": "CA"}},
                          "intentData": intent});
        app.request(Method::POST, &path).headers(&user).json(body).send()
    };
    let no_name = quest(json!({"paymentMethodId": "pm_card_visa", "amount": 1, "currency": "usd"})).await;
    assert_quest_error(&no_name, StatusCode::BAD_REQUEST, "name");
    let number = quest(json!({"paymentMethodId": "pm_card_visa", "amount": 1, "currency": "usd", "name": 5})).await;
    assert_quest_error(&number, StatusCode::BAD_REQUEST, "name");

    let created =
        quest(json!({"paymentMethodId": "pm_card_visa", "amount": 100, "currency": "usd", "name": "Starter"})).await;
    assert!(created.status.is_success(), "{}", created.body);
    let intent_id = created.data()["intentId"].as_str().expect("intentId");
    assert!(intent_id.starts_with("pi_"));
    let secret = created.data()["clientSecret"].as_str().expect("clientSecret");
    assert!(secret.starts_with(&format!("{intent_id}_secret_")));
    assert_eq!(created.data()["amount"], 999, "the tier's price, never intentData.amount");
    assert_ne!(created.data()["status"], "succeeded", "the browser confirms, not the server");

    // ?entityId= naming another entity than the path: 403, Quest's envelope.
    let elsewhere = app
        .request(Method::POST, &format!("{path}?entityId=e-elsewhere"))
        .headers(&user)
        .json(json!({"intentData": {"paymentMethodId": "pm_card_visa", "name": "Starter"}}))
        .send()
        .await;
    assert_eq!(elsewhere.status, StatusCode::FORBIDDEN, "{}", elsewhere.body);
    assert!(elsewhere.body["error"].is_string(), "{}", elsewhere.body);

    // Native Q6 on the same path: native envelope, native names.
    let native = app.request(Method::POST, &path).headers(&user).json(json!({"creditTierId": "t1"})).send().await;
    assert_eq!(native.status, StatusCode::CREATED, "{}", native.body);
    assert!(native.data()["paymentIntentId"].is_string());
    let native_refusal = app.request(Method::POST, &path).headers(&user).json(json!({})).send().await;
    assert_eq!(native_refusal.status, StatusCode::BAD_REQUEST);
    assert!(native_refusal.body["error"]["message"].is_string(), "{}", native_refusal.body);

    // An expired or forged session on a Quest body: Quest's envelope.
    let mut forged = user.clone();
    forged.retain(|(name, _)| name != "token");
    forged.push(("token".into(), "not-a-token".into()));
    let body = json!({"intentData": {"name": "Starter"}});
    let refused = app.request(Method::POST, &path).headers(&forged).json(body).send().await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.body["error"].is_string(), "{}", refused.body);
}

#[tokio::test]
async fn the_pools_routes_name_quests_fields_and_the_acting_user() {
    let app = TestApp::start().await;
    let entity = app.entity(&["owner"]).await;
    let other = app.entity(&[]).await;
    let owner = quest_headers(&entity, app.session(&entity, "owner").await);
    let before = app.item_count().await;
    let spend = |query: String, headers: &Headers, body: Value| {
        app.request(Method::POST, &format!("{}{query}", entity.path("/decrement-credits")))
            .headers(headers)
            .json(body)
            .send()
    };

    assert_quest_error(
        &spend("?userId=owner".into(), &owner, json!({})).await,
        StatusCode::BAD_REQUEST,
        "creditsAmount",
    );
    let named_other = spend("?userId=someone-else".into(), &owner, json!({"creditsAmount": 1})).await;
    assert_eq!(named_other.status, StatusCode::FORBIDDEN, "{}", named_other.body);
    assert!(named_other.body["error"].is_string());
    let query_entity =
        spend(format!("?userId=owner&entityId={}", other.entity_id), &owner, json!({"creditsAmount": 1})).await;
    assert_eq!(query_entity.status, StatusCode::FORBIDDEN, "{}", query_entity.body);
    let overspend = spend("?userId=owner".into(), &owner, json!({"creditsAmount": 1})).await;
    assert_eq!(overspend.status, StatusCode::PAYMENT_REQUIRED, "{}", overspend.body);
    assert!(overspend.body["error"].as_str().is_some_and(|e| e.contains("credits")), "{}", overspend.body);

    let buy = format!("{}?userId=owner", entity.path("/buy-credits"));
    let no_intent = app.request(Method::POST, &buy).headers(&owner).json(json!({"creditsTierId": "t1"})).send().await;
    assert_quest_error(&no_intent, StatusCode::BAD_REQUEST, "intentId");
    assert_eq!(app.item_count().await, before, "a refused Quest request wrote something");

    // The pool's credits object: no userId, Quest's fields beside ours.
    let read = app.request(Method::GET, &entity.path("/credits")).headers(&owner).send().await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert!(read.data().get("userId").is_none(), "{}", read.body);
    assert_eq!((&read.data()["creditsAmount"], &read.data()["history"]), (&json!(0), &json!([])));
}

/// The React component's three calls (create-payment-intent in its form → the browser
/// confirms at Stripe → approve-payment), with every way of crediting the intent racing:
/// ten approves, the SDK's buy-credits and the webhook three times. One purchase.
#[tokio::test]
async fn a_quest_purchase_is_credited_once_however_many_paths_race() {
    use std::future::Future;
    use std::pin::Pin;
    type Call = Pin<Box<dyn Future<Output = TestResponse> + Send>>;

    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    app.tier(
        &entity,
        json!({"creditTierId": "t1", "name": "Starter", "credits": 100, "bonusCredits": 20, "price": 999}),
    )
    .await;
    let user = quest_headers(&entity, app.session(&entity, "u-1").await);
    let body = json!({"cardData": {"name": "A", "email": "a@b.co", "address": {"city": "", "country": "US", "postal_code": "94107", "state": ""}},
                      "intentData": {"amount": 100, "currency": "usd", "name": "Starter", "paymentMethodId": "pm_card_visa"}});
    let created = app
        .request(Method::POST, &entity.path("/users/u-1/create-payment-intent"))
        .headers(&user)
        .json(body)
        .send()
        .await;
    assert!(created.status.is_success(), "{}", created.body);
    let intent = created.data()["intentId"].as_str().expect("intentId").to_owned();
    let confirmed =
        app.stripe_api("POST", &format!("/v1/payment_intents/{intent}/confirm"), "payment_method=pm_card_visa");
    assert_eq!(confirmed["status"], "succeeded", "{confirmed}");
    let succeeded = app
        .stripe_events("payment_intent.succeeded")
        .into_iter()
        .find(|event| event["data"]["object"]["id"] == intent.as_str())
        .expect("the succeeded event")
        .to_string();

    let approve = |app: &TestApp| -> Call {
        let request = app.request(Method::POST, &entity.path("/approve-payment"));
        Box::pin(request.headers(&user).json(json!({"intentId": intent})).send())
    };
    let buy = app
        .request(Method::POST, &format!("/api/users/u-1/buy-credits?entityId={}", entity.entity_id))
        .headers(&user)
        .json(json!({"creditsTierId": "t1", "intentId": intent}))
        .send();
    let mut calls: Vec<Call> = (0..10).map(|_| approve(&app)).collect();
    calls.push(Box::pin(buy));
    calls.extend((0..3).map(|_| -> Call { Box::pin(app.deliver(&succeeded)) }));
    for response in concurrently(calls).await {
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    }

    let ledger = app.assert_invariant(&entity.entity_id, "u-1").await;
    let purchases: Vec<_> = ledger.entries.iter().filter(|entry| entry.kind.as_str() == "purchase").collect();
    assert_eq!(purchases.len(), 1, "credited exactly once");
    assert_eq!((ledger.account.balance, purchases[0].credits), (120, 120));
}
