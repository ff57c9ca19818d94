//! Credits follow the money through every refund and dispute lifecycle Stripe has, driven
//! by Stripe's own test cards and evidence at the stand-in and delivered to the real
//! webhook route. Each lifecycle runs twice: live (each event delivered as it happens, the
//! account checked at every step) and replayed (the whole story first, then every event
//! twice in a shuffled order), and both must end the same.

use std::collections::HashSet;

use axum::http::{Method, StatusCode};
use integration_tests::TestApp;
use integration_tests::fixtures::EntityFixture;
use serde_json::json;

const TIER: &str = "pack";
/// What the tier sells: 100 credits + 20 bonus for 1000 (cents).
const CREDITED: i64 = 120;

/// What happens at Stripe, in the order a lifecycle does it.
#[derive(Debug, Clone, Copy)]
enum Act {
    /// A payment through the service (Q5) with one of Stripe's test payment methods.
    Pay(&'static str),
    /// A refund of the payment, whole or of `amount`.
    Refund(Option<u64>),
    /// Stripe fails the newest refund after it read `succeeded` (what it does, later, to
    /// refunds of `pm_card_refundFail`).
    FailRefund,
    /// Evidence submitted on the dispute; Stripe's test mode decides by its text.
    Evidence(&'static str),
    /// The merchant accepts (closes) the dispute.
    CloseDispute,
    /// The issuer escalates an inquiry to a chargeback.
    Escalate,
}

/// After an act and the delivery of its events: the account's balance, `lifetimeReversed`
/// and number of ledger entries.
struct Step {
    act: Act,
    balance: i64,
    reversed: u64,
    entries: usize,
}

const fn step(act: Act, balance: i64, reversed: u64, entries: usize) -> Step {
    Step { act, balance, reversed, entries }
}

async fn shop(app: &TestApp) -> EntityFixture {
    let entity = app.entity(&[]).await;
    app.tier(&entity, json!({"creditTierId": TIER, "name": "Pack", "credits": 100, "bonusCredits": 20, "price": 1000}))
        .await;
    entity
}

/// One user's payment and what Stripe did with it.
struct Story<'a> {
    app: &'a TestApp,
    entity: &'a EntityFixture,
    user: &'static str,
    intent: String,
    refund: String,
}

impl<'a> Story<'a> {
    fn new(app: &'a TestApp, entity: &'a EntityFixture, user: &'static str) -> Self {
        Self { app, entity, user, intent: String::new(), refund: String::new() }
    }

    /// Does `act` at Stripe; returns the id of the Stripe object it concerned.
    async fn act(&mut self, act: Act) -> String {
        let app = self.app;
        match act {
            Act::Pay(method) => {
                self.intent = self.pay(method).await;
                self.intent.clone()
            }
            Act::Refund(amount) => {
                let amount = amount.map(|a| format!("&amount={a}")).unwrap_or_default();
                let refund = app.stripe_api("POST", "/v1/refunds", &format!("payment_intent={}{amount}", self.intent));
                assert_eq!(refund["status"], "succeeded", "{refund}");
                self.refund = refund["id"].as_str().unwrap_or_default().to_owned();
                self.refund.clone()
            }
            Act::FailRefund => {
                let failed = app.stripe_api("POST", &format!("/_standin/refunds/{}/fail", self.refund), "");
                assert_eq!(failed["status"], "failed", "{failed}");
                self.refund.clone()
            }
            Act::Evidence(text) => {
                let dispute = self.dispute();
                app.stripe_api(
                    "POST",
                    &format!("/v1/disputes/{dispute}"),
                    &format!("evidence[uncategorized_text]={text}"),
                );
                dispute
            }
            Act::CloseDispute => {
                let dispute = self.dispute();
                app.stripe_api("POST", &format!("/v1/disputes/{dispute}/close"), "");
                dispute
            }
            Act::Escalate => {
                let dispute = self.dispute();
                app.stripe_api("POST", &format!("/_standin/disputes/{dispute}/escalate"), "");
                dispute
            }
        }
    }

    async fn pay(&self, method: &str) -> String {
        let response = self
            .app
            .request(Method::POST, "/api/payment/pay")
            .headers(&self.entity.server())
            .json(json!({"id": method, "product": {"creditTierId": TIER},
                         "info": {"userId": self.user, "entityId": self.entity.entity_id}}))
            .send()
            .await;
        assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
        response.data()["paymentIntentId"].as_str().unwrap_or_default().to_owned()
    }

    /// The payment's dispute, as Stripe lists it.
    fn dispute(&self) -> String {
        let disputes = self.app.stripe_api("GET", &format!("/v1/disputes?payment_intent={}", self.intent), "");
        disputes["data"][0]["id"].as_str().expect("the payment has a dispute").to_owned()
    }

    async fn deliver(&self, event: &str) {
        let response = self.app.deliver(event).await;
        assert_eq!(response.status, StatusCode::OK, "{:?} for {event}", response.body);
    }
}

/// Runs `steps` live, checking the account after each, then replays the same story with
/// every event twice in a shuffled order (`seed`) and checks it ends the same.
async fn follows_the_money(steps: &[Step], seed: u64) {
    let app = TestApp::start().await;
    let entity = shop(&app).await;

    let mut live = Story::new(&app, &entity, "u-live");
    let mut delivered = HashSet::new();
    for (index, step) in steps.iter().enumerate() {
        let subject = live.act(step.act).await;
        for event in app.events_about(&live.intent) {
            if delivered.insert(event.clone()) {
                live.deliver(&event).await;
            }
        }
        let ledger = app.assert_invariant(&entity.entity_id, live.user).await;
        let seen = (ledger.account.balance, ledger.account.lifetime_reversed, ledger.entries.len());
        assert_eq!(seen, (step.balance, step.reversed, step.entries), "after step {index}: {:?}", step.act);
        let newest = ledger.entries.first().expect("the payment credited");
        if index > 0 && newest.kind.as_str() != "purchase" {
            let reason = newest.reason.as_deref().unwrap_or_default();
            assert!(reason.contains(&subject), "the newest entry names {subject}: {reason}");
            assert_eq!(newest.payment_intent_id.as_deref(), Some(live.intent.as_str()));
        }
    }

    let mut replayed = Story::new(&app, &entity, "u-replayed");
    for step in steps {
        replayed.act(step.act).await;
    }
    let mut events = app.events_about(&replayed.intent);
    events.extend(events.clone());
    shuffle(&mut events, seed);
    for event in &events {
        replayed.deliver(event).await;
    }
    let end = steps.last().expect("a lifecycle has steps");
    let ledger = app.assert_invariant(&entity.entity_id, replayed.user).await;
    assert_eq!((ledger.account.balance, ledger.account.lifetime_reversed), (end.balance, end.reversed), "replayed");
}

/// Fisher–Yates with a fixed xorshift, so a failing order can be reproduced.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed | 1;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        items.swap(i, (state % (i as u64 + 1)) as usize);
    }
}

const INQUIRY: &str = "pm_card_createDisputeInquiry";
const CHARGEBACK: &str = "pm_card_createDispute";

#[tokio::test]
async fn an_inquiry_that_closes_leaves_the_account_as_it_was() {
    let steps = [step(Act::Pay(INQUIRY), CREDITED, 0, 1), step(Act::CloseDispute, CREDITED, 0, 1)];
    follows_the_money(&steps, 1).await;
}

#[tokio::test]
async fn an_inquiry_escalated_to_a_chargeback_takes_the_credits_until_it_is_won() {
    let steps = [
        step(Act::Pay(INQUIRY), CREDITED, 0, 1),
        step(Act::Escalate, 0, 120, 2),
        step(Act::Evidence("winning_evidence"), CREDITED, 0, 3),
    ];
    follows_the_money(&steps, 2).await;
}

#[tokio::test]
async fn a_chargeback_takes_the_credits_and_winning_it_gives_them_back() {
    let steps = [step(Act::Pay(CHARGEBACK), 0, 120, 2), step(Act::Evidence("winning_evidence"), CREDITED, 0, 3)];
    follows_the_money(&steps, 3).await;
}

#[tokio::test]
async fn a_lost_chargeback_keeps_the_credits_taken() {
    let steps = [step(Act::Pay(CHARGEBACK), 0, 120, 2), step(Act::Evidence("losing_evidence"), 0, 120, 2)];
    follows_the_money(&steps, 4).await;
}

#[tokio::test]
async fn an_accepted_chargeback_keeps_the_credits_taken() {
    let steps = [step(Act::Pay(CHARGEBACK), 0, 120, 2), step(Act::CloseDispute, 0, 120, 2)];
    follows_the_money(&steps, 5).await;
}

#[tokio::test]
async fn a_full_refund_takes_every_credit() {
    let steps = [step(Act::Pay("pm_card_visa"), CREDITED, 0, 1), step(Act::Refund(None), 0, 120, 2)];
    follows_the_money(&steps, 6).await;
}

#[tokio::test]
async fn partial_refunds_take_credits_in_proportion() {
    let steps = [
        step(Act::Pay("pm_card_visa"), CREDITED, 0, 1),
        step(Act::Refund(Some(300)), 84, 36, 2),
        step(Act::Refund(Some(200)), 60, 60, 3),
        step(Act::Refund(Some(500)), 0, 120, 4),
    ];
    follows_the_money(&steps, 7).await;
}

#[tokio::test]
async fn a_refund_that_fails_after_succeeding_gives_the_credits_back() {
    let steps = [
        step(Act::Pay("pm_card_refundFail"), CREDITED, 0, 1),
        step(Act::Refund(None), 0, 120, 2),
        step(Act::FailRefund, CREDITED, 0, 3),
    ];
    follows_the_money(&steps, 8).await;
}
