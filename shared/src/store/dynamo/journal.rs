//! Writing accounts through their journal (`domain::journal`): one conditional single-item
//! write per change, and the records moved out to their own items afterwards.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::errors::TxFailure;
use super::expression::Expression;
use super::{DynamoStore, Item, classify, from_item, idempotency, n, s, to_item};
use crate::domain::account::{ACCOUNT_FORMAT, Account, Entry, HoldRecord, NEWER_RECORD};
use crate::domain::journal::{Append, KeysForgotten, MAX_JOURNAL};
use crate::domain::ledger::HoldChange;
use crate::store::keys;
use crate::store::{Claim, KeyedEntry, MovedRecord, StoreError, StoreResult, StoredOutcome, Trim, Written};

/// How often a move transaction drops records another writer moved first, before giving up.
const MOVE_ATTEMPTS: usize = 6;
/// Puts of plain records' idempotency records in flight at once.
const PUTS_AT_ONCE: usize = 16;
/// Entries a move writes one put at a time at most (an uncontended move's: one per record of
/// `accounts::moving::MOVE_EVERY`); more go in a transaction.
const ENTRIES_ONE_BY_ONE: usize = 4;

/// A record that writes only its entries and idempotency record (no holds, no purchase count).
fn is_plain(record: &MovedRecord) -> bool {
    record.applied.holds.is_empty() && record.applied.purchased_tier.is_none()
}

fn built<T, E: std::fmt::Display>(result: Result<T, E>) -> StoreResult<T> {
    result.map_err(|e| StoreError::Internal(e.to_string()))
}

fn value(value: &impl serde::Serialize) -> StoreResult<AttributeValue> {
    serde_dynamo::to_attribute_value(value).map_err(|e| StoreError::Internal(e.to_string()))
}

fn account_of(item: Option<Item>) -> StoreResult<Option<Box<Account>>> {
    item.map(|item| account_from_item(item).map(Box::new)).transpose()
}

/// The account an item holds, if this version can read it: an item in a newer format (a
/// newer version wrote it, and may write it again after a rollback) is left alone, 503.
pub(super) fn account_from_item(item: Item) -> StoreResult<Account> {
    let format = item.get("format").and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<u32>().ok());
    if format.is_some_and(|format| format > ACCOUNT_FORMAT) {
        return Err(StoreError::Unavailable(format!("account item in format {format:?}, newer than this version's")));
    }
    from_item(item).map_err(|err| match err {
        StoreError::Internal(message) if message.contains(NEWER_RECORD) => StoreError::Unavailable(message),
        other => other,
    })
}

/// The conditional update that adds `append`'s change to the account.
fn append_expression(append: &Append) -> StoreResult<Expression> {
    let (record, delta) = (&append.record, &append.record.delta);
    let mut e = Expression::default();
    for (path, amount) in [
        ("balance", delta.balance),
        ("spendable", delta.spendable),
        ("lifetimePurchased", delta.purchased),
        ("lifetimeGranted", delta.granted),
        ("lifetimeConsumed", delta.consumed),
        ("lifetimeReversed", delta.reversed),
        ("version", 1),
    ] {
        if amount != 0 || path == "balance" {
            e.add(path, n(amount));
        }
    }
    e.set("updatedAt", n(record.at));
    let text = serde_json::to_string(record).map_err(|e| StoreError::Internal(e.to_string()))?;
    let (journal, empty, new) =
        (e.path("journal"), e.value(AttributeValue::L(vec![])), e.value(AttributeValue::L(vec![s(text)])));
    e.set_raw(format!("{journal} = list_append(if_not_exists({journal}, {empty}), {new})"));
    if let Some(until) = append.claim_mover {
        let (mover, until) = (e.path("moverUntil"), e.value(n(until)));
        e.set_raw(format!("{mover} = if_not_exists({mover}, {until})"));
    }
    let slot = format!("recentKeys.{}", append.slot);
    e.set(&slot, n(0));
    e.exists("version", true);
    match append.slot_seen {
        Some(stamp) => e.compare(&slot, "=", n(stamp)),
        None => e.exists(&slot, false),
    }
    let (journal, most) = (e.path("journal"), e.value(n(MAX_JOURNAL)));
    e.condition(format!("(attribute_not_exists({journal}) OR size({journal}) < {most})"));
    match append.keys_forgotten {
        Some(KeysForgotten { generated: true, by }) => {
            let (forgotten, by) = (e.path("autoForgotten"), e.value(n(by)));
            e.condition(format!("(attribute_not_exists({forgotten}) OR {forgotten} <= {by})"));
        }
        Some(KeysForgotten { generated: false, by }) => e.compare("keysForgottenBefore", "<=", n(by)),
        None => {}
    }
    if let Some(min) = append.min_spendable {
        e.compare("spendable", ">=", n(min));
    }
    for (id, hold) in &delta.holds_removed {
        e.remove(&format!("holds.{id}"));
        e.compare(&format!("holds.{id}.credits"), "=", n(hold.credits));
        e.compare(&format!("holds.{id}.expiresAt"), "=", n(hold.expires_at));
    }
    for (id, hold) in &delta.holds_added {
        e.set(&format!("holds.{id}"), value(hold)?);
        e.exists(&format!("holds.{id}"), false);
    }
    if let Some(max) = append.max_holds_before {
        let (holds, max) = (e.path("holds"), e.value(n(max)));
        e.condition(format!("size({holds}) <= {max}"));
    }
    for (payment, change) in &delta.reversals {
        let path = format!("reversals.{payment}");
        match change.after {
            0 => e.remove(&path),
            reversed => e.set(&path, value(&crate::domain::account::PaymentReversals { reversed })?),
        }
        match change.before {
            Some(reversed) => e.compare(&format!("{path}.reversed"), "=", n(reversed)),
            None => e.exists(&path, false),
        }
    }
    Ok(e)
}

/// Where a quiet change's main entry keeps its outcome (`MovedRecord::quiet`).
pub(super) const OUTCOME_KEY: &str = "outcomeKey";
const OUTCOME_FINGERPRINT: &str = "outcomeFingerprint";
const OUTCOME_ATTEMPT: &str = "outcomeAttempt";

/// `put` of a quiet change's main entry, keeping what answers under its key: the key and
/// the request's fingerprint and attempt (the outcome is the entry and the account).
fn keeping_outcome(mut put: Put, idem: &StoredOutcome) -> Put {
    for (name, value) in
        [(OUTCOME_KEY, &idem.key), (OUTCOME_FINGERPRINT, &idem.fingerprint), (OUTCOME_ATTEMPT, &idem.attempt)]
    {
        put.item.insert(name.to_owned(), s(value));
    }
    put
}

/// A quiet change's main entry as `LedgerStore::keyed_entry` reads it.
pub(super) fn keyed_entry(mut item: Item) -> StoreResult<KeyedEntry> {
    let mut text = |name: &str| match item.remove(name) {
        Some(AttributeValue::S(text)) => Ok(text),
        _ => Err(StoreError::Internal(format!("keyed entry without {name}"))),
    };
    let (fingerprint, attempt) = (text(OUTCOME_FINGERPRINT)?, text(OUTCOME_ATTEMPT)?);
    Ok(KeyedEntry { entry: super::ledger::entry_from_item(item)?, fingerprint, attempt })
}

/// What one action of a move writes: an entry or the idempotency record of the record at an
/// index, or the batch's holds and purchase counts.
#[derive(Debug, Clone, Copy)]
enum MoveAction {
    Entry(usize),
    Record(usize),
    Shared,
}

/// The final state of each hold a batch of records touches: one action per item.
enum HoldWrite {
    Put(HoldRecord),
    Settle { status: &'static str, captured: u64, at: i64 },
}

fn hold_writes(records: &[MovedRecord]) -> BTreeMap<String, HoldWrite> {
    let mut writes = BTreeMap::new();
    for moved in records {
        let at = moved.applied.account.updated_at.unwrap_or_default();
        for change in &moved.applied.holds {
            match change {
                HoldChange::Opened { hold_id, credits, expires_at, reason } => {
                    let record = HoldRecord {
                        hold_id: hold_id.clone(),
                        credits: *credits,
                        status: "active".into(),
                        captured_credits: 0,
                        reason: reason.clone(),
                        expires_at: *expires_at,
                        created_at: at,
                        settled_at: None,
                    };
                    writes.insert(hold_id.clone(), HoldWrite::Put(record));
                }
                HoldChange::Settled { hold_id, status, captured, .. } => {
                    let settled = match writes.remove(hold_id) {
                        Some(HoldWrite::Put(opened)) => HoldWrite::Put(HoldRecord {
                            status: status.as_str().into(),
                            captured_credits: *captured,
                            settled_at: Some(at),
                            ..opened
                        }),
                        _ => HoldWrite::Settle { status: status.as_str(), captured: *captured, at },
                    };
                    writes.insert(hold_id.clone(), settled);
                }
            }
        }
    }
    writes
}

impl DynamoStore {
    pub(super) async fn create_account_item(&self, account: &Account) -> StoreResult<Written> {
        let mut item = to_item(account, &keys::account(&account.entity_id, &account.user_id), "account")?;
        item.insert("spendable".into(), n(account.spendable()));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Written::Landed(Box::new(account.clone()))),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                    Ok(Written::Refused(account_of(failed.item().cloned())?))
                }
                _ => Err(classify(err)),
            },
        }
    }

    pub(super) async fn append_item(&self, entity_id: &str, user_id: &str, append: &Append) -> StoreResult<Written> {
        self.update_returning(entity_id, user_id, append_expression(append)?).await
    }

    /// A conditional update of the account that answers with the account as it left it, or
    /// as it was when the condition failed.
    async fn update_returning(&self, entity_id: &str, user_id: &str, e: Expression) -> StoreResult<Written> {
        let result = self
            .update_account(entity_id, user_id, e)
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => match account_of(output.attributes)? {
                Some(account) => Ok(Written::Landed(account)),
                None => Err(StoreError::Internal("update returned no account".into())),
            },
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    Ok(Written::Refused(account_of(failed.item().cloned())?))
                }
                _ => Err(classify(err)),
            },
        }
    }

    /// Writes the records' items in journal order. A run of plain records (an entry or more
    /// and an idempotency record each) is written as single conditional puts, each paid once
    /// (a transaction pays every item twice); a run that opens or settles holds or counts a
    /// purchase moves in transactions, as those items must change exactly once.
    pub(super) async fn move_records(
        &self,
        entity_id: &str,
        user_id: &str,
        records: &[MovedRecord],
    ) -> StoreResult<()> {
        let mut rest = records;
        while let Some(first) = rest.first() {
            let plain = is_plain(first);
            let (run, after) = rest.split_at(rest.iter().take_while(|r| is_plain(r) == plain).count());
            if plain {
                self.put_records(entity_id, user_id, run).await?;
            } else {
                self.move_in_transactions(entity_id, user_id, run).await?;
            }
            rest = after;
        }
        Ok(())
    }

    /// Plain records' items: every idempotency record as a single put (many at once), then the
    /// entries, so an entry that exists means its record's idempotency record does. An entry
    /// already there was moved by another mover (same position, same content); an idempotency
    /// record that may not be written belongs to another request, and is kept.
    async fn put_records(&self, entity_id: &str, user_id: &str, records: &[MovedRecord]) -> StoreResult<()> {
        let recorded = records.iter().filter(|moved| !moved.quiet);
        let idem = recorded.clone().map(|moved| idempotency::moved(&moved.idem, &self.table));
        let idem = idem.collect::<StoreResult<Vec<_>>>()?;
        for (written, moved) in self.put_all(idem, PUTS_AT_ONCE).await?.into_iter().zip(recorded) {
            if !written {
                tracing::warn!(key = %moved.idem.key, "key's record belongs to another request; kept");
            }
        }
        let mut entries = Vec::new();
        for moved in records {
            let last = moved.applied.entries.len().saturating_sub(1);
            for (index, entry) in moved.applied.entries.iter().enumerate() {
                let mut put = self.entry_put(entity_id, user_id, entry)?;
                if moved.quiet && index == last {
                    put = keeping_outcome(put, &moved.idem);
                }
                entries.push(put);
            }
        }
        self.put_entries(entries).await
    }

    /// The entries of a batch, in ledger order, as the table's stream must carry them (events
    /// are decided from it in that order). A few, as an uncontended move has, go one put at a
    /// time, each paid once; more (a journal that grew under contention, at most
    /// `MAX_ACTIONS`: `accounts::moving::batch_len`) go in one transaction, one round trip at
    /// twice the units, so a move under load does not outlive its claim (one put at a time, it
    /// did). An entry that exists was moved by another mover: the others are retried.
    async fn put_entries(&self, entries: Vec<Put>) -> StoreResult<()> {
        if entries.len() <= ENTRIES_ONE_BY_ONE {
            return self.put_all(entries, 1).await.map(|_| ());
        }
        let mut pending = entries;
        for _ in 0..MOVE_ATTEMPTS {
            if pending.is_empty() {
                return Ok(());
            }
            let items = pending.iter().map(|put| TransactWriteItem::builder().put(put.clone()).build());
            match self.transact_raw(items.collect(), None).await {
                Ok(()) => return Ok(()),
                Err(TxFailure::Condition { failed, .. }) => {
                    let unwritten = pending.into_iter().enumerate().filter(|(i, _)| !failed.contains(i));
                    pending = unwritten.map(|(_, put)| put).collect();
                }
                Err(TxFailure::Store(err)) => return Err(err),
            }
        }
        Err(StoreError::Unavailable("journal records kept moving under us".into()))
    }

    /// A ledger entry's item, which must be new (an entry is written once, at its position).
    fn entry_put(&self, entity_id: &str, user_id: &str, entry: &Entry) -> StoreResult<Put> {
        let item = to_item(entry, &keys::entry(entity_id, user_id, entry.position), "entry")?;
        built(
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build(),
        )
    }

    /// Each put on its own, `at_once` in flight; per put, whether its condition held. The
    /// first failure ends it: one at a time, what landed is a prefix (the stream keeps order).
    async fn put_all(&self, puts: Vec<Put>, at_once: usize) -> StoreResult<Vec<bool>> {
        use futures::{StreamExt, TryStreamExt};
        let calls = puts.into_iter().map(|put| {
            let call = self
                .client
                .put_item()
                .table_name(put.table_name)
                .set_item(Some(put.item))
                .set_condition_expression(put.condition_expression)
                .set_expression_attribute_names(put.expression_attribute_names)
                .set_expression_attribute_values(put.expression_attribute_values);
            async move { super::condition_held(call.send().await).map(|held| held.is_some()) }
        });
        futures::stream::iter(calls).buffered(at_once).try_collect().await
    }

    /// One transaction of the records' items; entries must be new, so a record another writer
    /// moved first fails it, and that record and those before it are dropped and the rest
    /// retried. A record whose key another request holds keeps that request's record (and is
    /// logged): the mover never overwrites another request's answer.
    async fn move_in_transactions(&self, entity_id: &str, user_id: &str, records: &[MovedRecord]) -> StoreResult<()> {
        let mut start = 0;
        let mut foreign = BTreeSet::new();
        for _ in 0..MOVE_ATTEMPTS {
            if start == records.len() {
                return Ok(());
            }
            let (items, actions) = self.move_items(entity_id, user_id, records, start, &foreign)?;
            let failed = match self.transact_raw(items, None).await {
                Ok(()) => return Ok(()),
                Err(TxFailure::Condition { failed, .. }) => failed,
                Err(TxFailure::Store(err)) => return Err(err),
            };
            for index in failed {
                match actions.get(index) {
                    // Records move in journal order, so every record up to this one is moved.
                    Some(MoveAction::Entry(record)) => start = start.max(record + 1),
                    Some(MoveAction::Record(record)) => {
                        tracing::warn!(key = %records[*record].idem.key, "key's record belongs to another request; kept");
                        foreign.insert(*record);
                    }
                    Some(MoveAction::Shared) | None => {
                        return Err(StoreError::Internal(format!("move failed on an unconditioned action {index}")));
                    }
                }
            }
        }
        Err(StoreError::Unavailable("journal records kept moving under us".into()))
    }

    /// The actions moving `records` from `start` on (leaving out the idempotency records of
    /// `foreign` ones), and what each action writes (the holds and purchase counts of the whole
    /// batch come last).
    fn move_items(
        &self,
        entity_id: &str,
        user_id: &str,
        records: &[MovedRecord],
        start: usize,
        foreign: &BTreeSet<usize>,
    ) -> StoreResult<(Vec<TransactWriteItem>, Vec<MoveAction>)> {
        let mut items = Vec::new();
        let mut actions = Vec::new();
        let mut purchases: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for (index, moved) in records.iter().enumerate().skip(start) {
            for entry in &moved.applied.entries {
                items.push(TransactWriteItem::builder().put(self.entry_put(entity_id, user_id, entry)?).build());
                actions.push(MoveAction::Entry(index));
            }
            if let Some(tier) = &moved.applied.purchased_tier {
                let at = moved.applied.account.updated_at.unwrap_or_default();
                let count = purchases.entry(tier).or_default();
                *count = (count.0 + 1, at);
            }
            if !foreign.contains(&index) {
                items.push(TransactWriteItem::builder().put(idempotency::moved(&moved.idem, &self.table)?).build());
                actions.push(MoveAction::Record(index));
            }
        }
        for (hold_id, write) in hold_writes(&records[start..]) {
            items.push(self.hold_item(entity_id, user_id, &hold_id, write)?);
        }
        for (tier_id, (count, at)) in purchases {
            items.push(self.count_purchases(entity_id, user_id, tier_id, count, at)?);
        }
        actions.resize(items.len(), MoveAction::Shared);
        Ok((items, actions))
    }

    fn hold_item(
        &self,
        entity_id: &str,
        user_id: &str,
        hold_id: &str,
        write: HoldWrite,
    ) -> StoreResult<TransactWriteItem> {
        let key = keys::hold(entity_id, user_id, hold_id);
        match write {
            HoldWrite::Put(record) => {
                let put = Put::builder().table_name(&self.table).set_item(Some(to_item(&record, &key, "hold")?));
                Ok(TransactWriteItem::builder().put(built(put.build())?).build())
            }
            HoldWrite::Settle { status, captured, at } => {
                let update = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key.to_item()))
                    .update_expression("SET #status = :status, capturedCredits = :captured, settledAt = :now")
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":status", s(status))
                    .expression_attribute_values(":captured", n(captured))
                    .expression_attribute_values(":now", n(at));
                Ok(TransactWriteItem::builder().update(built(update.build())?).build())
            }
        }
    }

    fn count_purchases(
        &self,
        entity_id: &str,
        user_id: &str,
        tier_id: &str,
        count: i64,
        at: i64,
    ) -> StoreResult<TransactWriteItem> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::purchases(entity_id, user_id, tier_id).to_item()))
            .update_expression(
                "ADD purchaseCount :count SET lastPurchasedAt = :now, creditTierId = :tier, kind = :kind",
            )
            .expression_attribute_values(":count", n(count))
            .expression_attribute_values(":now", n(at))
            .expression_attribute_values(":tier", s(tier_id))
            .expression_attribute_values(":kind", s("purchases"));
        Ok(TransactWriteItem::builder().update(built(update.build())?).build())
    }

    pub(super) async fn trim(&self, entity_id: &str, user_id: &str, trim: &Trim) -> StoreResult<Option<bool>> {
        let mut e = Expression::default();
        for index in 0..trim.count {
            e.remove(&format!("journal[{index}]"));
        }
        for slot in &trim.forget {
            e.remove(&format!("recentKeys.{slot}"));
        }
        for slot in &trim.moved_slots {
            e.set(&format!("recentKeys.{slot}"), n(trim.moved_at));
        }
        e.set("keysForgottenBefore", n(trim.forgotten_before.1));
        if let Some(forgotten) = trim.generated_forgotten_before {
            e.set("autoForgotten", n(forgotten));
        }
        e.add("movedRecords", n(trim.count));
        e.compare("movedRecords", "=", n(trim.moved_before));
        let (journal, count) = (e.path("journal"), e.value(n(trim.count)));
        e.condition(format!("size({journal}) >= {count}"));
        e.compare("keysForgottenBefore", "=", n(trim.forgotten_before.0));
        if let Some(until) = trim.release_mover {
            e.remove("moverUntil");
            e.compare("moverUntil", "=", n(until));
        }
        let result = self
            .update_account(entity_id, user_id, e)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let failed = match result {
            Ok(_) => return Ok(Some(trim.release_mover.is_some())),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => account_of(failed.item().cloned())?,
                _ => return Err(classify(err)),
            },
        };
        // Only the claim was not this mover's any more (it ran out and another mover took
        // it): trim all the same, leaving that mover's claim alone.
        let as_expected = failed.is_some_and(|a| {
            a.moved_records == trim.moved_before
                && a.journal.len() >= trim.count
                && a.keys_forgotten_before == trim.forgotten_before.0
        });
        if trim.release_mover.is_some() && as_expected {
            let unclaimed = Trim { release_mover: None, ..trim.clone() };
            return Box::pin(self.trim(entity_id, user_id, &unclaimed)).await;
        }
        Ok(None)
    }

    /// Sets what journals need on an item written before them (`spendable` from its balance
    /// and holds, empty journal and keys), if nobody changed it since it was read.
    pub(super) async fn upgrade_account_item(&self, account: &Account) -> StoreResult<bool> {
        let mut e = Expression::default();
        e.set("spendable", n(account.spendable()));
        for (path, empty) in [
            ("journal", AttributeValue::L(vec![])),
            ("recentKeys", AttributeValue::M(Default::default())),
            ("holds", AttributeValue::M(Default::default())),
            ("reversals", AttributeValue::M(Default::default())),
            ("movedRecords", n(0)),
            ("keysForgottenBefore", n(0)),
        ] {
            let (path, empty) = (e.path(path), e.value(empty));
            e.set_raw(format!("{path} = if_not_exists({path}, {empty})"));
        }
        e.compare("version", "=", n(account.version));
        e.exists("spendable", false);
        let result = self.update_account(&account.entity_id, &account.user_id, e).send().await;
        Ok(super::condition_held(result)?.is_some())
    }

    /// The account must exist: a claim never creates one. A claim until `until` already in
    /// place is this mover's own (its first answer was lost), and the retry takes it again.
    pub(super) async fn claim_mover_item(
        &self,
        entity_id: &str,
        user_id: &str,
        now: i64,
        until: i64,
    ) -> StoreResult<Claim> {
        let mut e = Expression::default();
        e.set("moverUntil", n(until));
        e.exists("version", true);
        let (mover, now, mine) = (e.path("moverUntil"), e.value(n(now)), e.value(n(until)));
        e.condition(format!("(attribute_not_exists({mover}) OR {mover} < {now} OR {mover} = {mine})"));
        Ok(match self.update_returning(entity_id, user_id, e).await? {
            Written::Landed(account) => Claim::Taken(account),
            Written::Refused(Some(account)) => Claim::Held(account.mover_until),
            Written::Refused(None) => Claim::NoAccount,
        })
    }

    pub(super) async fn release_mover_item(&self, entity_id: &str, user_id: &str, until: i64) -> StoreResult<()> {
        let mut e = Expression::default();
        e.remove("moverUntil");
        e.compare("moverUntil", "=", n(until));
        let result = self.update_account(entity_id, user_id, e).send().await;
        super::condition_held(result).map(|_| ())
    }

    /// A conditional update of the account item, which also marks the item as in this
    /// version's format and refuses an item in a newer one (`ACCOUNT_FORMAT`).
    fn update_account(&self, entity_id: &str, user_id: &str, mut e: Expression) -> UpdateItemFluentBuilder {
        e.set("format", n(ACCOUNT_FORMAT));
        let (format, mine) = (e.path("format"), e.value(n(ACCOUNT_FORMAT)));
        e.condition(format!("(attribute_not_exists({format}) OR {format} <= {mine})"));
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::account(entity_id, user_id).to_item()))
            .update_expression(e.update_expression())
            .set_condition_expression(e.condition_expression())
            .set_expression_attribute_names(Some(e.names))
            .set_expression_attribute_values(Some(e.values))
    }
}
