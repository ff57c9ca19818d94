//! What each Stripe event does. Every effect is guarded by its own permanent key (the
//! PaymentIntent, the refunded amount, the dispute, the invoice), so a repeated or late
//! event is a no-op.

use serde_json::Value;

use shared::accounts::{self, Outcome};
use shared::domain::account::SubscriptionUpdate;
use shared::domain::ledger::{Change, Operation, is_nothing_to_change};
use shared::domain::payment::{Payment, metadata};
use shared::idempotency::IdempotencyKey;
use shared::payments::{credit_invoice, credit_payment};
use shared::{ApiResult, AppState};

/// Acts on one event; `false` when the event is not one this service acts on, or concerns
/// a payment or subscription this service has no record of (whatever its metadata says).
pub async fn handle(state: &AppState, kind: &str, object: &Value) -> ApiResult<bool> {
    match kind {
        "payment_intent.succeeded" => {
            let Some(payment) = recorded_payment(state, text(object, "id"), object).await? else { return Ok(false) };
            credit_payment(state, &payment).await?;
            Ok(true)
        }
        "payment_intent.payment_failed" | "payment_intent.canceled" => {
            let status = if kind.ends_with("canceled") { "canceled" } else { "failed" };
            state.store.set_payment_status(text(object, "id"), status).await?;
            Ok(true)
        }
        "charge.refunded" => {
            let Some(payment) = recorded_payment(state, text(object, "payment_intent"), object).await? else {
                return Ok(false);
            };
            let refunded = number(object, "amount_refunded");
            let operation = Operation::Refund {
                payment_intent_id: payment.payment_intent_id.clone(),
                credited: payment.total_credits(),
                refunded,
                amount: payment.amount,
            };
            let key = format!("#refund#{}#{refunded}", payment.payment_intent_id);
            reverse(state, &payment, operation, &key, "refund").await
        }
        "charge.dispute.created" | "charge.dispute.closed" => {
            let Some(payment) = disputed_payment(state, object).await? else { return Ok(false) };
            let dispute = text(object, "id");
            let (operation, step) = match (kind, text(object, "status")) {
                ("charge.dispute.created", _) => (
                    Operation::DisputeOpened {
                        payment_intent_id: payment.payment_intent_id.clone(),
                        credited: payment.total_credits(),
                    },
                    "opened",
                ),
                (_, "won") => (Operation::DisputeWon { payment_intent_id: payment.payment_intent_id.clone() }, "won"),
                // A lost dispute keeps what it reversed.
                _ => return Ok(true),
            };
            reverse(state, &payment, operation, &format!("#dispute#{dispute}#{step}"), "dispute").await
        }
        "invoice.paid" => {
            let Some(subscription) = invoiced_subscription(state, object).await? else { return Ok(false) };
            credit_invoice(state, &subscription, text(object, "id")).await?;
            // The line's period is the one this invoice paid for (a renewal's own
            // `period_end` is the period just ended).
            let period_end = object["lines"]["data"][0]["period"]["end"].as_i64().map(|end| end * 1000);
            note_subscription(state, &subscription, None, period_end).await
        }
        "customer.subscription.deleted" => {
            let Some(subscription) = state.store.get_subscription(text(object, "id")).await? else {
                return Ok(ignored("subscription", text(object, "id")));
            };
            note_subscription(state, &subscription, Some("ended"), None).await
        }
        _ => Ok(false),
    }
}

/// Logs an event about something this service has no record of (or whose money does not
/// match the record) and acts on nothing.
fn ignored(what: &str, id: &str) -> bool {
    tracing::warn!(
        what,
        id,
        "stripe event for an object this service did not create, or that disagrees with its record; ignored"
    );
    false
}

/// The payment record of a PaymentIntent, if the event's object (the intent or its charge)
/// carries the amount and currency the record sold.
async fn recorded_payment(state: &AppState, intent_id: &str, object: &Value) -> ApiResult<Option<Payment>> {
    if intent_id.is_empty() {
        return Ok(None);
    }
    let payment = state.store.get_payment(intent_id).await?;
    let agrees = |p: &Payment| p.matches(number(object, "amount"), text(object, "currency")) && names(object, p);
    Ok(payment.filter(agrees).or_else(|| {
        ignored("payment", intent_id);
        None
    }))
}

/// Whether the object's metadata, where it names an entity or user, names the record's.
fn names(object: &Value, payment: &Payment) -> bool {
    let claims = |field: &str, ours: &str| object["metadata"][field].as_str().is_none_or(|claimed| claimed == ours);
    claims(metadata::ENTITY, &payment.entity_id) && claims(metadata::USER, &payment.user_id)
}

/// The payment a dispute is about (a dispute's `amount` may be part of the charge: only its
/// currency must agree).
async fn disputed_payment(state: &AppState, dispute: &Value) -> ApiResult<Option<Payment>> {
    let intent_id = text(dispute, "payment_intent");
    let payment = match intent_id {
        "" => None,
        id => state.store.get_payment(id).await?,
    };
    let agrees = |p: &Payment| p.currency.eq_ignore_ascii_case(text(dispute, "currency"));
    Ok(payment.filter(agrees).or_else(|| {
        ignored("disputed payment", intent_id);
        None
    }))
}

/// The subscription record an invoice paid for, if the invoice paid what the record sold.
async fn invoiced_subscription(state: &AppState, invoice: &Value) -> ApiResult<Option<Payment>> {
    // Newer API versions name the subscription under `parent`, older ones at the top.
    let id = [&invoice["parent"]["subscription_details"]["subscription"], &invoice["subscription"]]
        .into_iter()
        .find_map(Value::as_str)
        .unwrap_or_default();
    if id.is_empty() {
        return Ok(None);
    }
    let subscription = state.store.get_subscription(id).await?;
    Ok(subscription.filter(|s| s.matches(number(invoice, "amount_paid"), text(invoice, "currency"))).or_else(|| {
        ignored("subscription", id);
        None
    }))
}

/// Records what an event says of a subscription (`subscription` is its snapshot; its id is
/// the subscription's).
async fn note_subscription(
    state: &AppState,
    subscription: &Payment,
    status: Option<&str>,
    current_period_end: Option<i64>,
) -> ApiResult<bool> {
    let update = SubscriptionUpdate {
        subscription_id: subscription.payment_intent_id.clone(),
        status: status.map(str::to_owned),
        current_period_end,
    };
    let (entity, user, tier) = (&subscription.entity_id, &subscription.user_id, &subscription.credit_tier_id);
    state.store.update_subscription(entity, user, tier, &update).await?;
    Ok(true)
}

async fn reverse(
    state: &AppState,
    payment: &Payment,
    operation: Operation,
    key: &str,
    reason: &str,
) -> ApiResult<bool> {
    let key = IdempotencyKey::permanent(&payment.entity_id, key, key);
    let change = Change { operation, reason: Some(reason.to_owned()), idempotency_key: None };
    let outcome = accounts::change(state, &payment.entity_id, &payment.user_id, &change, &key, |_, _| {
        Ok((Default::default(), Value::Null))
    })
    .await;
    match outcome {
        Ok(Outcome::Done { .. } | Outcome::Replayed { .. }) => Ok(true),
        Err(err) if is_nothing_to_change(&err) => Ok(true),
        Err(err) => Err(err),
    }
}

fn text<'a>(object: &'a Value, field: &str) -> &'a str {
    object[field].as_str().unwrap_or_default()
}

fn number(object: &Value, field: &str) -> u64 {
    object[field].as_u64().unwrap_or_default()
}
