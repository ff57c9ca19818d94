//! What each Stripe event does. Every effect is guarded by its own permanent key (the
//! PaymentIntent, the refunded amount, the dispute, the invoice), so a repeated or late
//! event is a no-op.

use serde_json::Value;

use shared::domain::account::SubscriptionUpdate;
use shared::domain::payment::{Payment, metadata};
use shared::usecases::payments::{credit_invoice, credit_payment, follow_the_money};
use shared::{AppState, Fallible};

/// Acts on one event; `false` when the event is not one this service acts on, or concerns
/// a payment or subscription this service has no record of (whatever its metadata says).
pub async fn handle(state: &AppState, kind: &str, object: &Value) -> Fallible<bool> {
    match kind {
        "payment_intent.succeeded" => {
            let Some(payment) = recorded_payment(state, text(object, "id"), object).await? else { return Ok(false) };
            credit_payment(state.context(), &payment).await?;
            Ok(true)
        }
        "payment_intent.payment_failed" | "payment_intent.canceled" => {
            let status = if kind.ends_with("canceled") { "canceled" } else { "failed" };
            state.store.set_payment_status(text(object, "id"), status).await?;
            Ok(true)
        }
        // Refunds and disputes, in any order, any number of times: each only says which
        // payment's money moved; what moved is read from Stripe as it stands now.
        "charge.refunded"
        | "charge.refund.updated"
        | "refund.created"
        | "refund.updated"
        | "refund.failed"
        | "charge.dispute.created"
        | "charge.dispute.updated"
        | "charge.dispute.closed"
        | "charge.dispute.funds_withdrawn"
        | "charge.dispute.funds_reinstated" => {
            let Some(payment) = moved_payment(state, object).await? else { return Ok(false) };
            follow_the_money(state.context(), &payment).await?;
            Ok(true)
        }
        "invoice.paid" => {
            let Some(subscription) = invoiced_subscription(state, object).await? else { return Ok(false) };
            credit_invoice(state.context(), &subscription, text(object, "id")).await?;
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
async fn recorded_payment(state: &AppState, intent_id: &str, object: &Value) -> Fallible<Option<Payment>> {
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

/// Whether the object's metadata, where it names an entity, user or beneficiary, names the
/// record's. Crediting still goes to the record's beneficiary, never to what metadata says.
fn names(object: &Value, payment: &Payment) -> bool {
    let claims = |field: &str, ours: &str| object["metadata"][field].as_str().is_none_or(|claimed| claimed == ours);
    claims(metadata::ENTITY, &payment.entity_id)
        && claims(metadata::USER, &payment.user_id)
        && claims(metadata::BENEFICIARY, payment.beneficiary.kind())
}

/// The payment a refund, charge or dispute is about: our record of its PaymentIntent, in
/// the same currency (a refund or dispute may be for part of the amount).
async fn moved_payment(state: &AppState, object: &Value) -> Fallible<Option<Payment>> {
    let intent_id = text(object, "payment_intent");
    let payment = match intent_id {
        "" => None,
        id => state.store.get_payment(id).await?,
    };
    let agrees = |p: &Payment| p.currency.eq_ignore_ascii_case(text(object, "currency")) && names(object, p);
    Ok(payment.filter(agrees).or_else(|| {
        ignored("payment", intent_id);
        None
    }))
}

/// The subscription record an invoice paid for, if the invoice paid what the record sold.
async fn invoiced_subscription(state: &AppState, invoice: &Value) -> Fallible<Option<Payment>> {
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
) -> Fallible<bool> {
    let update = SubscriptionUpdate {
        subscription_id: subscription.payment_intent_id.clone(),
        status: status.map(str::to_owned),
        current_period_end,
    };
    let (entity, user, tier) = (&subscription.entity_id, &subscription.user_id, &subscription.credit_tier_id);
    state.store.update_subscription(entity, user, tier, &update).await?;
    Ok(true)
}

fn text<'a>(object: &'a Value, field: &str) -> &'a str {
    object[field].as_str().unwrap_or_default()
}

fn number(object: &Value, field: &str) -> u64 {
    object[field].as_u64().unwrap_or_default()
}
