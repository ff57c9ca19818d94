//! Items written by other versions of the service: an account from before journals, a
//! journal record in format 1 and a payment's record from before typed facts are read and
//! upgraded; an account or journal record in a newer format is refused (503) and left exactly
//! as it was. Plus what replays
//! show (the balance as it stands now) and what a trim may end (only its own claim).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use axum::http::{Method, StatusCode};
use integration_tests::TestApp;
use integration_tests::fixtures::EntityFixture;
use serde_json::json;
use shared::accounts::AccountSlots;
use shared::clock::Clock;
use shared::context::Context;
use shared::domain::payment::{Beneficiary, Payment};
use shared::idempotency::IdempotencyKey;
use shared::store::dynamo::DynamoStore;
use shared::store::{LedgerStore, Trim, keys};
use shared::usecases::payments;

type Item = HashMap<String, AttributeValue>;

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

/// An account item as the version before journals wrote it: whole-item puts, no `spendable`,
/// no journal, no keys.
fn pre_journal_account(entity_id: &str, user_id: &str, far: i64) -> Item {
    let mut item = keys::account(entity_id, user_id).to_item();
    let hold = HashMap::from([("credits".to_owned(), n(30)), ("expiresAt".to_owned(), n(far))]);
    item.extend([
        ("kind".to_owned(), s("account")),
        ("entityId".to_owned(), s(entity_id)),
        ("userId".to_owned(), s(user_id)),
        ("balance".to_owned(), n(100)),
        ("version".to_owned(), n(3)),
        ("holds".to_owned(), AttributeValue::M(HashMap::from([("h-1".to_owned(), AttributeValue::M(hold))]))),
        ("lifetimePurchased".to_owned(), n(0)),
        ("lifetimeGranted".to_owned(), n(100)),
        ("lifetimeConsumed".to_owned(), n(0)),
        ("lifetimeReversed".to_owned(), n(0)),
        ("updatedAt".to_owned(), n(1)),
        ("reversals".to_owned(), AttributeValue::M(HashMap::new())),
    ]);
    item
}

async fn put(app: &TestApp, item: Item) {
    app.dynamodb.put_item().table_name(&app.table).set_item(Some(item)).send().await.expect("put item");
}

async fn raw_account(app: &TestApp, entity: &EntityFixture, user: &str) -> Item {
    let key = keys::account(&entity.entity_id, user).to_item();
    let output = app.dynamodb.get_item().table_name(&app.table).set_key(Some(key)).consistent_read(true).send().await;
    output.expect("get item").item().cloned().expect("account item")
}

async fn spend(app: &TestApp, entity: &EntityFixture, user: &str, credits: u64) -> integration_tests::TestResponse {
    app.request(Method::POST, &entity.path(&format!("/users/{user}/decrement-credits")))
        .headers(&entity.server())
        .json(json!({"credits": credits}))
        .send()
        .await
}

#[tokio::test]
async fn an_account_from_before_journals_is_upgraded_on_its_first_write() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    put(&app, pre_journal_account(&entity.entity_id, "old", app.clock_millis() + 3_600_000)).await;
    let spent = spend(&app, &entity, "old", 10).await;
    assert_eq!(spent.status, StatusCode::OK, "{:?}", spent.body);
    assert_eq!(
        (spent.data()["account"]["balance"].as_i64(), spent.data()["account"]["available"].as_i64()),
        (Some(90), Some(60))
    );
    let item = raw_account(&app, &entity, "old").await;
    assert_eq!(item.get("spendable"), Some(&n(60)), "balance minus every hold");
    assert_eq!(spend(&app, &entity, "old", 61).await.status, StatusCode::PAYMENT_REQUIRED, "the hold still counts");
}

/// A succeeded payment of `credits` + `bonus` to `u-1`.
fn paid(app: &TestApp, entity: &EntityFixture, payment_intent_id: &str, credits: u64, bonus: u64) -> Payment {
    Payment {
        payment_intent_id: payment_intent_id.into(),
        entity_id: entity.entity_id.clone(),
        user_id: "u-1".into(),
        credit_tier_id: "t1".into(),
        credits,
        bonus_credits: bonus,
        amount: 500,
        currency: "usd".into(),
        status: "succeeded".into(),
        created_at: app.clock.now_millis(),
        beneficiary: Beneficiary::User("u-1".into()),
    }
}

#[tokio::test]
async fn a_payment_credited_in_the_old_record_form_is_already_credited() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    let key = IdempotencyKey::permanent(&entity.entity_id, "#payment#pi_old", "#payment#pi_old");
    let mut record = keys::idempotency(&entity.entity_id, "#payment#pi_old").to_item();
    let fingerprint = key.reservation(0).fingerprint;
    record.extend([
        ("kind".to_owned(), s("idempotency")),
        ("entityId".to_owned(), s(&entity.entity_id)),
        ("key".to_owned(), s("#payment#pi_old")),
        ("fingerprint".to_owned(), s(&fingerprint)),
        ("body".to_owned(), s(r#"{"entryId":"e1"}"#)),
        ("status".to_owned(), n(200)),
        ("expiresAt".to_owned(), n(253_402_300_799_000)),
    ]);
    put(&app, record).await;
    app.grant(&entity, "u-1", 40).await;

    let store = DynamoStore::new(app.dynamodb.clone(), app.table.clone());
    let slots = AccountSlots::default();
    let ctx = Context { store: &store, clock: app.clock.as_ref(), slots: &slots, gateway: None };
    let payment = paid(&app, &entity, "pi_old", 100, 0);
    let credited = payments::credit_payment(ctx, &payment).await.expect("credit");
    assert!(credited.already_credited);
    assert_eq!((credited.entry_id.as_deref(), credited.account.balance), (Some("e1"), 40), "as it stands now");
}

#[tokio::test]
async fn a_payment_replayed_shows_the_balance_as_it_stands_now() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    let store = DynamoStore::new(app.dynamodb.clone(), app.table.clone());
    let slots = AccountSlots::default();
    let ctx = Context { store: &store, clock: app.clock.as_ref(), slots: &slots, gateway: None };
    let payment = paid(&app, &entity, "pi_new", 50, 5);
    assert_eq!(payments::credit_payment(ctx, &payment).await.expect("credit").account.balance, 55);
    assert_eq!(spend(&app, &entity, "u-1", 10).await.status, StatusCode::OK);
    app.assert_invariant(&entity.entity_id, "u-1").await; // moves the journal out
    let again = payments::credit_payment(ctx, &payment).await.expect("replay");
    assert!(again.already_credited);
    assert_eq!(again.account.balance, 45);
}

#[tokio::test]
async fn an_account_or_record_in_a_newer_format_is_refused_and_left_alone() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    app.grant(&entity, "newer", 50).await;
    app.grant(&entity, "record", 50).await;
    let key = keys::account(&entity.entity_id, "newer").to_item();
    app.dynamodb
        .update_item()
        .table_name(&app.table)
        .set_key(Some(key))
        .update_expression("SET #f = :f")
        .expression_attribute_names("#f", "format")
        .expression_attribute_values(":f", n(99))
        .send()
        .await
        .expect("mark newer");
    let record = r#"{"v":99,"key":"k","whatever":{"new":true}}"#;
    let key = keys::account(&entity.entity_id, "record").to_item();
    app.dynamodb
        .update_item()
        .table_name(&app.table)
        .set_key(Some(key))
        .update_expression("SET journal = list_append(journal, :r)")
        .expression_attribute_values(":r", AttributeValue::L(vec![s(record)]))
        .send()
        .await
        .expect("append newer record");

    // A warm process that wrote "newer" is refused by the item's format in its write's own
    // condition. A newer version sets the item's format with every write, so a newer record
    // in an older item is met only by a process reading the item: one that has not cached it.
    let cold = app.sibling().await;
    for (user, process) in [("newer", &app), ("record", &cold)] {
        let before = raw_account(&app, &entity, user).await;
        let spent = spend(process, &entity, user, 1).await;
        assert_eq!(spent.status, StatusCode::SERVICE_UNAVAILABLE, "{user}: {:?}", spent.body);
        let read = process
            .request(Method::GET, &entity.path(&format!("/users/{user}/credits")))
            .headers(&entity.server())
            .send()
            .await;
        assert_eq!(read.status, StatusCode::SERVICE_UNAVAILABLE, "{user}: {:?}", read.body);
        assert_eq!(raw_account(&app, &entity, user).await, before, "{user}: nothing written");
    }
}

#[tokio::test]
async fn a_trim_ends_only_its_own_claim() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    app.grant(&entity, "u-1", 5).await;
    let store = DynamoStore::new(app.dynamodb.clone(), app.table.clone());
    let now = app.clock_millis();
    let shared::store::Claim::Taken(claimed) =
        store.claim_mover(&entity.entity_id, "u-1", now, now + 9_000).await.expect("claim")
    else {
        panic!("the journal was free");
    };
    // A mover whose claim ran out (another took it since) drops what it moved.
    let stale = Trim {
        moved_before: claimed.moved_records,
        count: 0,
        moved_slots: vec![],
        moved_at: now,
        forget: vec![],
        forgotten_before: (claimed.keys_forgotten_before, claimed.keys_forgotten_before),
        generated_forgotten_before: None,
        release_mover: Some(now + 1_000),
    };
    assert_eq!(store.trim_journal(&entity.entity_id, "u-1", &stale).await.expect("trim"), Some(false));
    let after = store.get_account(&entity.entity_id, "u-1").await.expect("read").expect("account");
    assert_eq!(after.mover_until, now + 9_000, "the newer mover keeps its claim");
}

/// A journal record as format 1 wrote it (long names, hex digests, each entry's
/// `createdAt`), taken from a stored account item.
const FORMAT_1_RECORD: &str = r##"{"v":1,"key":"#auto#01M99G1VQ5KZYFPFSZZ364JS83","fingerprint":"73fd19bd441cc0129d88fc466a3ebe42b83b3852663154ccfbea66facf96f2f1","attempt":"98e0205ccc58423685b7abd9faa6a1a3","keyExpiresAt":1796775299814,"at":1796688899814,"delta":{"balance":-1,"spendable":-1,"consumed":1},"entries":[{"createdAt":"2026-12-08T00:14:59.814Z","credits":-1,"entryId":"01M99G1VQ6RN3E5CYW5YEZC8CM","type":"decrement"}],"offsets":[[-1,0]]}"##;

#[tokio::test]
async fn a_journal_record_format_1_wrote_moves_out_as_it_was_written() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    app.grant(&entity, "old", 50).await;
    assert_eq!(app.history(&entity, "old").await.len(), 1, "the grant moved out");
    // The item as a format-1 writer leaves it after a spend of 1: its record in the journal.
    let slot = shared::domain::journal::key_slot("#auto#01M99G1VQ5KZYFPFSZZ364JS83");
    app.dynamodb
        .update_item()
        .table_name(&app.table)
        .set_key(Some(keys::account(&entity.entity_id, "old").to_item()))
        .update_expression(
            "SET #f = :one, journal = list_append(journal, :r), recentKeys.#slot = :zero \
             ADD balance :minus, spendable :minus, lifetimeConsumed :one, version :one",
        )
        .expression_attribute_names("#f", "format")
        .expression_attribute_names("#slot", slot)
        .expression_attribute_values(":one", n(1))
        .expression_attribute_values(":zero", n(0))
        .expression_attribute_values(":minus", n(-1))
        .expression_attribute_values(":r", AttributeValue::L(vec![s(FORMAT_1_RECORD)]))
        .send()
        .await
        .expect("a format-1 spend");

    let entries = app.history(&entity, "old").await;
    let old = entries.iter().find(|e| e["entryId"] == "01M99G1VQ6RN3E5CYW5YEZC8CM").expect("its entry");
    assert_eq!(old["createdAt"], "2026-12-08T00:14:59.814Z");
    assert_eq!((old["credits"].as_i64(), old["balanceAfter"].as_i64()), (Some(-1), Some(49)));
    assert_eq!(spend(&app, &entity, "old", 1).await.status, StatusCode::OK);
    let format = shared::domain::account::ACCOUNT_FORMAT;
    assert_eq!(
        raw_account(&app, &entity, "old").await.get("format"),
        Some(&n(i64::from(format))),
        "in this version's format"
    );
    let ledger = app.assert_invariant(&entity.entity_id, "old").await;
    assert_eq!((ledger.account.balance, ledger.entries.len()), (48, 3));
}
