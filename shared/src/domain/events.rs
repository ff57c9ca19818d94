//! Events to entities (§9): which events a change of the store means. Credit events come
//! from ledger entries (one entry, at most one credit event, its id derived from the entry's),
//! so a change that landed always has its events and a change that did not never has; a
//! duplicate or replayed change yields the same ids.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::clock::rfc3339;
use crate::domain::account::{Entry, EntryType};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventType {
    #[serde(rename = "credits.purchased")]
    CreditsPurchased,
    #[serde(rename = "credits.granted")]
    CreditsGranted,
    #[serde(rename = "credits.reversed")]
    CreditsReversed,
    #[serde(rename = "credits.regranted")]
    CreditsRegranted,
    #[serde(rename = "credits.low")]
    CreditsLow,
    #[serde(rename = "credits.recovered")]
    CreditsRecovered,
    #[serde(rename = "credits.expired")]
    CreditsExpired,
    #[serde(rename = "credits.spent")]
    CreditsSpent,
    #[serde(rename = "hold.expired")]
    HoldExpired,
    #[serde(rename = "payment.failed")]
    PaymentFailed,
    #[serde(rename = "subscription.renewed")]
    SubscriptionRenewed,
    #[serde(rename = "subscription.ended")]
    SubscriptionEnded,
}

impl EventType {
    pub const ALL: [Self; 12] = [
        Self::CreditsPurchased,
        Self::CreditsGranted,
        Self::CreditsReversed,
        Self::CreditsRegranted,
        Self::CreditsLow,
        Self::CreditsRecovered,
        Self::CreditsExpired,
        Self::CreditsSpent,
        Self::HoldExpired,
        Self::PaymentFailed,
        Self::SubscriptionRenewed,
        Self::SubscriptionEnded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreditsPurchased => "credits.purchased",
            Self::CreditsGranted => "credits.granted",
            Self::CreditsReversed => "credits.reversed",
            Self::CreditsRegranted => "credits.regranted",
            Self::CreditsLow => "credits.low",
            Self::CreditsRecovered => "credits.recovered",
            Self::CreditsExpired => "credits.expired",
            Self::CreditsSpent => "credits.spent",
            Self::HoldExpired => "hold.expired",
            Self::PaymentFailed => "payment.failed",
            Self::SubscriptionRenewed => "subscription.renewed",
            Self::SubscriptionEnded => "subscription.ended",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == value)
    }

    /// Sent only to endpoints that name it (spends are too many to send by default).
    pub fn is_opt_in(self) -> bool {
        self == Self::CreditsSpent
    }

    /// The credit event a ledger entry of `kind` means, if any (holds and releases move no
    /// credits in or out; they still count for low-balance alerts).
    pub fn of_entry(kind: EntryType) -> Option<Self> {
        match kind {
            EntryType::Purchase => Some(Self::CreditsPurchased),
            EntryType::Grant => Some(Self::CreditsGranted),
            EntryType::Reversal => Some(Self::CreditsReversed),
            EntryType::Regrant => Some(Self::CreditsRegranted),
            EntryType::Expire => Some(Self::HoldExpired),
            EntryType::Decrement | EntryType::Capture => Some(Self::CreditsSpent),
            EntryType::Hold | EntryType::Release => None,
        }
    }
}

/// One event to deliver. `order` sorts an account's events in the order they happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub entity_id: String,
    /// The account the event is about (`#pool` for the entity's pool).
    pub user_id: String,
    /// Events of one lane are delivered to an endpoint in `order`: an account's credit
    /// events form one lane, its billing events (payments, subscriptions) another.
    pub lane: String,
    pub order: String,
    /// The signed body, exactly as sent on every attempt.
    pub body: String,
}

/// A change of the store that events are made of, decoded from the table's stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A ledger entry was written (`position` is its place in the account's history).
    Entry { entity_id: String, user_id: String, position: String, entry: Entry },
    /// A recorded payment turned `failed`.
    PaymentFailed { entity_id: String, user_id: String, payment_intent_id: String, credit_tier_id: String, at: i64 },
    /// A subscription turned `ended`.
    SubscriptionEnded { entity_id: String, user_id: String, subscription_id: String, credit_tier_id: String, at: i64 },
    /// An account's journal holds changes not yet moved out to their entries (`accounts`):
    /// the dispatcher moves them, and their entries' own records bring their events.
    JournalPending { entity_id: String, user_id: String },
}

/// What the dispatcher last decided for an account's low-balance alerts: whether it stands
/// low, as of the entry at `position` (entries are decided in order, each once).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertState {
    pub low: bool,
    pub position: String,
}

/// Which side of the low-balance threshold an account's last change left it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alert {
    Low,
    Recovered,
}

/// Whether a change that leaves `available` credits crosses the threshold, given whether the
/// account stood below it (as last alerted). Level-triggered with memory: `credits.low` once
/// when it drops below, `credits.recovered` once when it is back at or above; a new account
/// stands above, so its first grant alerts nothing.
pub fn crossing(was_low: bool, available: i64, threshold: u64) -> Option<Alert> {
    let below = available < threshold as i64;
    match (was_low, below) {
        (false, true) => Some(Alert::Low),
        (true, false) => Some(Alert::Recovered),
        _ => None,
    }
}

/// Prefix marking the purchase entries of subscription invoices (set by `credit_invoice`).
const INVOICE_REASON: &str = "subscription invoice ";

fn account_json(entity_id: &str, user_id: &str, entry: &Entry) -> Value {
    json!({
        "entityId": entity_id,
        "userId": user_id,
        "balance": entry.balance_after,
        "held": entry.held_after,
        "available": entry.balance_after - entry.held_after as i64,
        "updatedAt": rfc3339(entry.created_at),
    })
}

fn body(kind: EventType, at: i64, data: Value) -> String {
    json!({"type": kind.as_str(), "timestamp": rfc3339(at), "data": data}).to_string()
}

/// The account's available credits after the entry.
pub fn available_after(entry: &Entry) -> i64 {
    entry.balance_after - entry.held_after as i64
}

/// The events one ledger entry means: its credit event, a subscription renewal for an
/// invoice's purchase, and the low-balance alert it triggers. Ids derive from the entry id.
pub fn of_entry(entity_id: &str, user_id: &str, position: &str, entry: &Entry, alert: Option<Alert>) -> Vec<Event> {
    let entry_json = serde_json::to_value(entry).unwrap_or(Value::Null);
    let base = json!({"entityId": entity_id, "userId": user_id, "account": account_json(entity_id, user_id, entry)});
    let make = |kind: EventType, suffix: &str, rank: u8, extra: Value| {
        let mut data = base.clone();
        if let (Some(data), Some(extra)) = (data.as_object_mut(), extra.as_object()) {
            data.extend(extra.clone());
        }
        Event {
            event_id: format!("evt_{}{suffix}", entry.entry_id),
            kind,
            entity_id: entity_id.to_owned(),
            user_id: user_id.to_owned(),
            lane: user_id.to_owned(),
            order: format!("{position}#{rank}"),
            body: body(kind, entry.created_at, data),
        }
    };
    let mut events = Vec::new();
    if let Some(kind) = EventType::of_entry(entry.kind) {
        events.push(make(kind, "", 0, json!({"entry": entry_json})));
    }
    if let Some(invoice) = entry.reason.as_deref().and_then(|r| r.strip_prefix(INVOICE_REASON))
        && entry.kind == EntryType::Purchase
    {
        let extra = json!({"entry": entry_json, "invoiceId": invoice, "creditTierId": entry.credit_tier_id});
        events.push(make(EventType::SubscriptionRenewed, "_renewed", 1, extra));
    }
    match alert {
        Some(Alert::Low) => events.push(make(EventType::CreditsLow, "_low", 2, json!({"entryId": entry.entry_id}))),
        Some(Alert::Recovered) => {
            events.push(make(EventType::CreditsRecovered, "_recovered", 2, json!({"entryId": entry.entry_id})))
        }
        None => {}
    }
    events
}

/// The event of a payment or subscription change.
pub fn of_billing(change: &Change) -> Option<Event> {
    let (kind, id, entity_id, user_id, at, data) = match change {
        Change::PaymentFailed { entity_id, user_id, payment_intent_id, credit_tier_id, at } => (
            EventType::PaymentFailed,
            format!("evt_payment_failed_{payment_intent_id}"),
            entity_id,
            user_id,
            *at,
            json!({"paymentIntentId": payment_intent_id, "creditTierId": credit_tier_id}),
        ),
        Change::SubscriptionEnded { entity_id, user_id, subscription_id, credit_tier_id, at } => (
            EventType::SubscriptionEnded,
            format!("evt_subscription_ended_{subscription_id}"),
            entity_id,
            user_id,
            *at,
            json!({"subscriptionId": subscription_id, "creditTierId": credit_tier_id}),
        ),
        Change::Entry { .. } | Change::JournalPending { .. } => return None,
    };
    let mut data = data;
    data["entityId"] = json!(entity_id);
    data["userId"] = json!(user_id);
    Some(Event {
        lane: format!("{user_id}#billing"),
        order: format!("{at:020}#{id}"),
        event_id: id,
        kind,
        entity_id: entity_id.clone(),
        user_id: user_id.clone(),
        body: body(kind, at, data),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: EntryType, credits: i64, balance_after: i64) -> Entry {
        Entry {
            entry_id: "01J".into(),
            kind,
            credits,
            balance_after,
            held_after: 0,
            reason: None,
            credit_tier_id: None,
            payment_intent_id: None,
            hold_id: None,
            idempotency_key: None,
            by_user_id: None,
            created_at: 0,
            position: (1, 0),
        }
    }

    #[test]
    fn alerts_once_per_crossing_and_not_for_a_new_account() {
        let threshold = 10;
        let mut low = false;
        let mut alerts = Vec::new();
        for available in [30, 25, 20, 15, 10, 5, 0, 9, 11, 4, 50] {
            if let Some(alert) = crossing(low, available, threshold) {
                low = alert == Alert::Low;
                alerts.push((available, alert));
            }
        }
        assert_eq!(alerts, [(5, Alert::Low), (11, Alert::Recovered), (4, Alert::Low), (50, Alert::Recovered)]);
    }

    #[test]
    fn an_entry_yields_its_event_with_an_id_derived_from_it() {
        let grant = entry(EntryType::Grant, 30, 30);
        let events = of_entry("e", "u", "P", &grant, Some(Alert::Recovered));
        let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventType::CreditsGranted, EventType::CreditsRecovered]);
        assert_eq!(events[0].event_id, "evt_01J");
        assert!(events[0].order < events[1].order);
        assert_eq!(of_entry("e", "u", "P", &grant, Some(Alert::Recovered)), events, "deterministic");
        let body: Value = serde_json::from_str(&events[0].body).unwrap();
        assert_eq!(body["data"]["account"]["available"], 30);
        assert_eq!(body["data"]["entry"]["type"], "grant");
        assert!(of_entry("e", "u", "P", &entry(EntryType::Hold, 0, 30), None).is_empty());
    }

    #[test]
    fn an_invoice_purchase_also_renews_the_subscription() {
        let mut purchase = entry(EntryType::Purchase, 100, 100);
        purchase.reason = Some("subscription invoice in_42".into());
        purchase.credit_tier_id = Some("ct-1".into());
        let events = of_entry("e", "u", "P", &purchase, None);
        let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventType::CreditsPurchased, EventType::SubscriptionRenewed]);
        let body: Value = serde_json::from_str(&events[1].body).unwrap();
        assert_eq!(
            (body["data"]["invoiceId"].as_str(), events[1].event_id.as_str()),
            (Some("in_42"), "evt_01J_renewed")
        );
        purchase.reason = Some("bought".into());
        assert_eq!(of_entry("e", "u", "P", &purchase, None).len(), 1);
    }
}
