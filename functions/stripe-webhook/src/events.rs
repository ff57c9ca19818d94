//! What each Stripe event does. Every effect is guarded by its own permanent key (the
//! PaymentIntent, the refunded amount, the dispute, the invoice), so a repeated or late
//! event is a no-op.

use serde_json::Value;

use shared::accounts::{self, Outcome};
use shared::domain::account::SubscriptionUpdate;
use shared::domain::ledger::{Change, Operation, is_nothing_to_change};
use shared::domain::payment::{Intent, Payment};
use shared::idempotency::IdempotencyKey;
use shared::payments::{credit_invoice, credit_payment};
use shared::{ApiResult, AppState};

/// Acts on one event; `false` when the event is not one this service acts on.
pub async fn handle(state: &AppState, kind: &str, object: &Value) -> ApiResult<bool> {
    match kind {
        "payment_intent.succeeded" => {
            let Some(payment) = payment_of(state, text(object, "id"), Some(object)).await? else { return Ok(false) };
            credit_payment(state, &payment).await?;
            Ok(true)
        }
        "payment_intent.payment_failed" | "payment_intent.canceled" => {
            let status = if kind.ends_with("canceled") { "canceled" } else { "failed" };
            state.store.set_payment_status(text(object, "id"), status).await?;
            Ok(true)
        }
        "charge.refunded" => {
            let Some(payment) = payment_of(state, text(object, "payment_intent"), None).await? else {
                return Ok(false);
            };
            let refunded = number(object, "amount_refunded");
            let operation = Operation::Refund {
                payment_intent_id: payment.payment_intent_id.clone(),
                credited: payment.total_credits(),
                refunded,
                amount: number(object, "amount").max(payment.amount),
            };
            let key = format!("#refund#{}#{refunded}", payment.payment_intent_id);
            reverse(state, &payment, operation, &key, "refund").await
        }
        "charge.dispute.created" | "charge.dispute.closed" => {
            let Some(payment) = payment_of(state, text(object, "payment_intent"), None).await? else {
                return Ok(false);
            };
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
            let Some(subscription) = subscription_of(object, state.clock.now_millis()) else { return Ok(false) };
            credit_invoice(state, &subscription, text(object, "id")).await?;
            // The line's period is the one this invoice paid for (a renewal's own
            // `period_end` is the period just ended).
            let period_end = object["lines"]["data"][0]["period"]["end"].as_i64().map(|end| end * 1000);
            note_subscription(state, &subscription, None, period_end).await
        }
        "customer.subscription.deleted" => {
            let metadata = strings(&object["metadata"]);
            let Some(subscription) = Payment::from_metadata(text(object, "id"), &metadata, 0) else { return Ok(false) };
            note_subscription(state, &subscription, Some("ended"), None).await
        }
        _ => Ok(false),
    }
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

/// The subscription an invoice paid for, with the snapshot this service put in the
/// subscription's metadata (Stripe copies it onto the invoice; older and newer API versions
/// put it in different places).
fn subscription_of(invoice: &Value, now: i64) -> Option<Payment> {
    let details = [&invoice["parent"]["subscription_details"], &invoice["subscription_details"]];
    let id = details.iter().find_map(|d| d["subscription"].as_str()).or_else(|| invoice["subscription"].as_str())?;
    let metadata = details.iter().map(|d| strings(&d["metadata"])).find(|m| !m.is_empty())?;
    Payment::from_metadata(id, &metadata, now)
}

fn strings(object: &Value) -> std::collections::HashMap<String, String> {
    object
        .as_object()
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default()
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

/// The payment a PaymentIntent id stands for: our record, else the snapshot in the intent's
/// metadata (from the event, or asked of Stripe). `None` for intents this service did not make.
async fn payment_of(state: &AppState, intent_id: &str, intent: Option<&Value>) -> ApiResult<Option<Payment>> {
    if intent_id.is_empty() {
        return Ok(None);
    }
    if let Some(payment) = state.store.get_payment(intent_id).await? {
        return Ok(Some(payment));
    }
    let intent = match intent {
        Some(object) => Some(intent_from_json(object)),
        None => state.gateway()?.retrieve_intent(intent_id).await?,
    };
    let payment = intent.and_then(|intent| Payment::from_intent(&intent, state.clock.now_millis()));
    if payment.is_none() {
        tracing::info!(intent_id, "event for a payment this service did not create; ignored");
    }
    Ok(payment)
}

fn intent_from_json(object: &Value) -> Intent {
    let metadata = strings(&object["metadata"]);
    Intent {
        id: text(object, "id").to_owned(),
        status: text(object, "status").to_owned(),
        amount: number(object, "amount"),
        currency: text(object, "currency").to_owned(),
        client_secret: None,
        metadata,
    }
}

fn text<'a>(object: &'a Value, field: &str) -> &'a str {
    object[field].as_str().unwrap_or_default()
}

fn number(object: &Value, field: &str) -> u64 {
    object[field].as_u64().unwrap_or_default()
}
