//! The journal write path under what real DynamoDB and Lambda do that a happy path never
//! shows (issue 21): one key per entity across accounts and routes, a request deadline, lost
//! answers of the write that claims the journal, a journal that cannot move, keys reused after
//! a day, instances whose clocks disagree, and items written by other versions.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use integration_tests::emulator::{self, control};
use integration_tests::fixtures::EntityFixture;
use integration_tests::stores::{FaultyStore, Gate};
use integration_tests::{TestApp, TestResponse};
use serde_json::{Value, json};
use shared::accounts::{self, AccountRef, AccountSlots, Ledger};
use shared::clock::ManualClock;
use shared::domain::journal::key_slot;
use shared::domain::ledger::{Change, Operation};
use shared::idempotency::IdempotencyKey;
use shared::store::LedgerStore;
use shared::store::dynamo::DynamoStore;

async fn post(app: &TestApp, entity: &EntityFixture, rest: &str, body: Value) -> TestResponse {
    app.request(Method::POST, &entity.path(rest)).headers(&entity.server()).json(body).send().await
}

async fn history(app: &TestApp, entity: &EntityFixture, user: &str) -> TestResponse {
    let path = entity.path(&format!("/users/{user}/credit-history"));
    app.request(Method::GET, &path).headers(&entity.server()).send().await
}

fn store(app: &TestApp) -> DynamoStore {
    DynamoStore::new(app.dynamodb.clone(), app.table.clone())
}

async fn account(app: &TestApp, entity: &EntityFixture, user: &str) -> shared::domain::account::Account {
    store(app).get_account(&entity.entity_id, user).await.expect("read account").expect("account exists")
}

#[tokio::test]
async fn one_key_is_the_entitys_on_every_account_route_and_batch_item() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    let grant = json!({"credits": 5, "idempotencyKey": "K"});
    assert_eq!(post(&app, &entity, "/users/x/buy-credits", grant.clone()).await.status, StatusCode::OK);

    // Still in x's journal: another account, another route, a batch item's own key.
    let other_user = post(&app, &entity, "/users/y/buy-credits", grant.clone()).await;
    assert_eq!((other_user.status, other_user.error_code()), (StatusCode::CONFLICT, "IDEMPOTENCY_KEY_REUSED"));
    let tier = app
        .request(Method::POST, &entity.path("/credit-tiers"))
        .headers(&entity.server())
        .header("idempotency-key", "K")
        .json(json!({"creditTierId": "t1", "name": "T", "credits": 1, "price": 1}))
        .send()
        .await;
    assert_eq!(tier.status, StatusCode::CONFLICT, "{:?}", tier.body);
    let batch = post(
        &app,
        &entity,
        "/users/decrement-credits",
        json!({"decrements": [
            {"userId": "x", "credits": 1, "idempotencyKey": "K"},
        ]}),
    )
    .await;
    assert_eq!(batch.data()["results"][0]["error"]["code"], "IDEMPOTENCY_KEY_REUSED", "{:?}", batch.body);

    // Moved out of the journal: still the first request's, and its retry replays.
    assert_eq!(history(&app, &entity, "x").await.status, StatusCode::OK);
    assert!(account(&app, &entity, "x").await.journal.is_empty());
    assert_eq!(post(&app, &entity, "/users/y/buy-credits", grant.clone()).await.status, StatusCode::CONFLICT);
    let retry = post(&app, &entity, "/users/x/buy-credits", grant).await;
    assert_eq!(retry.status, StatusCode::OK);
    assert_eq!(retry.headers.get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));

    // A key a tier took first is the tier's: the spend is refused, the tier's retry replays.
    let tier_body = json!({"creditTierId": "t2", "name": "T", "credits": 1, "price": 1});
    let create = || {
        app.request(Method::POST, &entity.path("/credit-tiers"))
            .headers(&entity.server())
            .header("idempotency-key", "T")
            .json(tier_body.clone())
            .send()
    };
    assert_eq!(create().await.status, StatusCode::CREATED);
    let spend = post(&app, &entity, "/users/x/buy-credits", json!({"credits": 1, "idempotencyKey": "T"})).await;
    assert_eq!(spend.status, StatusCode::CONFLICT);
    assert_eq!(create().await.status, StatusCode::CREATED, "the tier's own retry replays");

    assert_eq!(app.assert_invariant(&entity.entity_id, "x").await.account.balance, 5);
    assert_eq!(app.assert_invariant(&entity.entity_id, "y").await.account.version, 0, "nothing written for y");
}

/// A service whose requests have 1.5 s to answer, behind a fault proxy (`slow_updates`
/// slows its `UpdateItem`s), with `u-1` holding 100 credits.
async fn behind_a_slow_store() -> (emulator::Server, TestApp, EntityFixture) {
    let proxy = emulator::proxy(&["--no-model-conflicts"]);
    let app = TestApp::behind_with_budget(&proxy.endpoint, 1_500).await;
    let entity = app.funded(100).await;
    (proxy, app, entity)
}

/// Every `UpdateItem` through `proxy` waits `millis` first (0: none).
fn slow_updates(proxy: &emulator::Server, millis: u64) {
    let config =
        if millis == 0 { json!({"op_latency_ms": {}}) } else { json!({"op_latency_ms": {"UpdateItem": millis}}) };
    control(&proxy.endpoint, "POST", "/_proxy/config", &config.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_store_gets_an_answer_within_the_budget_naming_the_key_and_the_retry_is_exact() {
    let (proxy, app, entity) = behind_a_slow_store().await;
    slow_updates(&proxy, 4_000);
    let body = json!({"credits": 7, "reason": "slow"});
    let slow = post(&app, &entity, "/users/u-1/decrement-credits", body.clone()).await;
    assert_eq!(slow.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", slow.body);
    assert!(slow.headers.contains_key("retry-after"));
    let key = slow.body["error"]["idempotencyKey"].as_str().expect("the outcome's key, generated").to_owned();

    slow_updates(&proxy, 0);
    let retry = app
        .request(Method::POST, &entity.path("/users/u-1/decrement-credits"))
        .headers(&entity.server())
        .header("idempotency-key", &key)
        .json(body)
        .send()
        .await;
    assert_eq!(retry.status, StatusCode::OK, "{:?}", retry.body);
    let ledger = app.assert_invariant(&entity.entity_id, "u-1").await;
    let spent = ledger.entries.iter().filter(|e| e.reason.as_deref() == Some("slow")).count();
    assert_eq!((spent, ledger.account.balance), (1, 93), "applied once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_whose_claiming_write_lost_its_answer_moves_the_journal_itself() {
    let proxy = emulator::proxy(&["--no-model-conflicts"]);
    let app = TestApp::behind(&proxy.endpoint).await;
    let entity = app.funded(100).await;
    // The grant moved nothing (one record); spends bring it one short of a move.
    let before_move = shared::accounts::MOVE_EVERY - 1;
    for i in 1..before_move {
        let spend =
            post(&app, &entity, "/users/u-1/decrement-credits", json!({"credits": 1, "reason": format!("s{i}")}));
        assert_eq!(spend.await.status, StatusCode::OK);
    }
    assert_eq!(account(&app, &entity, "u-1").await.journal.len(), before_move);
    control(&proxy.endpoint, "POST", "/_proxy/drop-next", r#"{"op": "UpdateItem", "count": 1}"#);
    let claiming = post(&app, &entity, "/users/u-1/decrement-credits", json!({"credits": 1, "reason": "last"})).await;
    assert_eq!(claiming.status, StatusCode::OK, "{:?}", claiming.body);
    let after = account(&app, &entity, "u-1").await;
    assert!(after.journal.is_empty(), "{} records left behind a claim nobody acts on", after.journal.len());
    assert_eq!(after.mover_until, 0);
    app.assert_invariant(&entity.entity_id, "u-1").await;
}

/// A ledger over `store` at `clock`, for driving accounts directly.
fn ledger<'a>(
    store: &'a dyn shared::store::AccountStore,
    clock: &'a ManualClock,
    slots: &'a AccountSlots,
) -> Ledger<'a> {
    Ledger { store, clock, slots }
}

fn grant_change(credits: u64) -> Change {
    Change { operation: Operation::Grant { credits }, reason: None, idempotency_key: None, by_user_id: None }
}

fn client_key(entity_id: &str, key: &str, credits: u64) -> IdempotencyKey {
    let body = json!({"credits": credits});
    IdempotencyKey::from_request(Some(key.as_bytes()), entity_id, "POST /test/grant", &body).expect("key")
}

async fn grant(
    ledger: Ledger<'_>,
    account: AccountRef<'_>,
    key: &IdempotencyKey,
    credits: u64,
) -> Result<bool, shared::Error> {
    accounts::change(ledger, account, &grant_change(credits), key, |_, _| Ok(())).await.map(|answer| answer.replayed)
}

#[tokio::test]
async fn a_journal_that_cannot_move_refuses_writes_with_503_long_before_the_item_limit() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    let faulty = FaultyStore::new(store(&app));
    faulty.moves_fail.store(true, Ordering::SeqCst);
    let slots = AccountSlots::default();
    let ledger = ledger(&faulty, &app.clock, &slots);
    let account = AccountRef::user(&entity.entity_id, "u-1");
    let mut refused = 0;
    for i in 0..100 {
        let key = IdempotencyKey::internal(&entity.entity_id, &format!("grant {i}"));
        match grant(ledger, account, &key, 1).await {
            Ok(_) => {}
            Err(shared::Error::Unavailable { .. }) => refused += 1,
            Err(other) => panic!("grant {i}: {other:?} (not 503)"),
        }
    }
    let item = app
        .dynamodb
        .get_item()
        .table_name(&app.table)
        .set_key(Some(shared::store::keys::account(&entity.entity_id, "u-1").to_item()))
        .send()
        .await
        .expect("item");
    let bytes = format!("{:?}", item.item()).len();
    let journal = account_of(&app, &entity).await.journal.len();
    assert!(refused > 0 && journal <= shared::domain::journal::MAX_JOURNAL, "{refused} refused, {journal} records");
    assert!(bytes < 350_000, "item about {bytes} bytes");
    faulty.moves_fail.store(false, Ordering::SeqCst);
    let balance = app.assert_invariant(&entity.entity_id, "u-1").await.account.balance;
    assert_eq!(balance, 100 - refused, "every 200 counted once, every 503 not at all");
}

async fn account_of(app: &TestApp, entity: &EntityFixture) -> shared::domain::account::Account {
    account(app, entity, "u-1").await
}

/// Clients' keys, which are kept a while after they move (generated ones are forgotten as
/// they move: `a_generated_key_is_forgotten_as_it_moves…`).
#[tokio::test]
async fn every_move_forgets_its_own_share_of_old_keys() {
    const FORGET_AT_MOST: usize = 40; // accounts::moving, per trim
    // Grants a journal takes while its moves fail (below `MAX_JOURNAL_BYTES` of records).
    const ADDED: usize = 5;
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    let plain = store(&app);
    let slots = AccountSlots::default();
    let account = AccountRef::user(&entity.entity_id, "u-1");
    for i in 0..120 {
        let key = client_key(&entity.entity_id, &format!("old {i}"), 1);
        grant(ledger(&plain, &app.clock, &slots), account, &key, 1).await.expect("grant");
    }
    accounts::settle(ledger(&plain, &app.clock, &slots), account).await.expect("settle");
    app.clock.advance_seconds(2);
    let faulty = FaultyStore::new(store(&app));
    let mut remembered = vec![account_of(&app, &entity).await.recent_keys.len()];
    for round in 0..2 {
        faulty.moves_fail.store(true, Ordering::SeqCst);
        for i in 0..ADDED {
            let key = client_key(&entity.entity_id, &format!("new {round} {i}"), 1);
            grant(ledger(&faulty, &app.clock, &slots), account, &key, 1).await.expect("grant");
        }
        accounts::settle(ledger(&plain, &app.clock, &slots), account).await.expect("settle");
        remembered.push(account_of(&app, &entity).await.recent_keys.len());
    }
    assert_eq!(remembered[0], 120);
    assert_eq!(remembered[1], 120 + ADDED - FORGET_AT_MOST, "{remembered:?}");
    assert_eq!(remembered[2], 120 + 2 * ADDED - 2 * FORGET_AT_MOST, "the second move forgot others: {remembered:?}");
}

#[tokio::test]
async fn a_key_reused_after_a_day_on_an_idle_account_is_a_new_request() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    let first = post(&app, &entity, "/users/u-1/buy-credits", json!({"credits": 5, "idempotencyKey": "daily"})).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(history(&app, &entity, "u-1").await.status, StatusCode::OK);
    app.clock.advance_seconds(25 * 3600);
    let again = post(&app, &entity, "/users/u-1/buy-credits", json!({"credits": 6, "idempotencyKey": "daily"})).await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
    assert!(!again.headers.contains_key("idempotent-replayed"));
    assert_eq!(app.assert_invariant(&entity.entity_id, "u-1").await.account.balance, 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mover_whose_clock_is_behind_never_lets_a_key_apply_twice() {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    let (plain, slots) = (store(&app), AccountSlots::default());
    let account = AccountRef::user(&entity.entity_id, "u-1");
    let on_time = ManualClock::starting_now();
    let behind = ManualClock::starting_now();
    behind.advance_millis(-1_500);
    let opening = IdempotencyKey::internal(&entity.entity_id, "opening grant");
    grant(ledger(&plain, &on_time, &slots), account, &opening, 5).await.expect("the account exists");

    // W: the request's attempt that will write last; it checks the key now and is held
    // at its write while everything below happens.
    let gate = Gate::default();
    let gated = FaultyStore::gated(store(&app), gate.clone());
    let key = client_key(&entity.entity_id, "K", 10);
    let writer = {
        let (key, entity_id, clock) = (key.clone(), entity.entity_id.clone(), ManualClock::starting_now());
        tokio::spawn(async move {
            let slots = AccountSlots::default();
            let ledger = Ledger { store: &gated, clock: &clock, slots: &slots };
            grant(ledger, AccountRef::user(&entity_id, "u-1"), &key, 10).await
        })
    };
    gate.reached.notified().await;

    // Another key moved out on time; then R1 (the same request, another attempt) lands and a
    // mover whose clock is 1.5 s behind moves it; then a trim a second later.
    let other = client_key(&entity.entity_id, "J", 1);
    grant(ledger(&plain, &on_time, &slots), account, &other, 1).await.expect("J");
    accounts::move_journal(ledger(&plain, &on_time, &slots), account).await.expect("move J");
    let retry = client_key(&entity.entity_id, "K", 10);
    assert_eq!(grant(ledger(&plain, &on_time, &AccountSlots::default()), account, &retry, 10).await.ok(), Some(false));
    accounts::move_journal(ledger(&plain, &behind, &slots), account).await.expect("slow move");
    on_time.advance_seconds(1);
    let later = client_key(&entity.entity_id, "L", 1);
    grant(ledger(&plain, &on_time, &slots), account, &later, 1).await.expect("L");
    accounts::move_journal(ledger(&plain, &on_time, &slots), account).await.expect("move L");

    gate.go.notify_one();
    let replayed = writer.await.expect("writer task").expect("W answers");
    assert!(replayed, "W finds R1's change, not a free key");
    assert_eq!(app.assert_invariant(&entity.entity_id, "u-1").await.account.balance, 17, "K applied once");
}

/// An entity whose user `u-1` was granted 50 credits (under a client's key).
async fn granted_fifty() -> (TestApp, EntityFixture) {
    let app = TestApp::start().await;
    let entity = app.entity(&[]).await;
    let (key, slots) = (client_key(&entity.entity_id, "G", 50), AccountSlots::default());
    let account = AccountRef::user(&entity.entity_id, "u-1");
    grant(ledger(&store(&app), &app.clock, &slots), account, &key, 50).await.expect("G");
    (app, entity)
}

/// A generated key is forgotten as its record moves out (only its own request can ask for
/// it); that request, whose write landed but whose answer was lost and which retries only
/// after the move, is refused by `autoForgotten`, finds its key's record and
/// spends once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_key_is_forgotten_as_it_moves_and_a_retry_after_a_lost_answer_spends_once() {
    let (app, entity) = granted_fifty().await;
    let (plain, slots) = (store(&app), AccountSlots::default());
    let account = AccountRef::user(&entity.entity_id, "u-1");

    let gate = Gate::default();
    let losing = FaultyStore::losing_an_answer(store(&app), gate.clone());
    let key = IdempotencyKey::internal(&entity.entity_id, "spend");
    let writer = {
        let (key, entity_id, clock) = (key.clone(), entity.entity_id.clone(), app.clock.clone());
        tokio::spawn(async move {
            let slots = AccountSlots::default();
            let ledger = Ledger { store: &losing, clock: &*clock, slots: &slots };
            let spend = Change { operation: Operation::Decrement { credits: 7 }, ..grant_change(0) };
            accounts::change(ledger, AccountRef::user(&entity_id, "u-1"), &spend, &key, |_, _| Ok(()))
                .await
                .map(|answer| answer.replayed)
        })
    };
    gate.reached.notified().await;
    accounts::settle(ledger(&plain, &app.clock, &slots), account).await.expect("move the spend out");
    let moved = account_of(&app, &entity).await;
    assert!(!moved.recent_keys.contains_key(&key_slot(&key.key)), "the generated key is forgotten as it moves");
    assert!(moved.generated_keys_forgotten_before > 0);

    gate.go.notify_one();
    let replayed = writer.await.expect("writer task").expect("the spend answers");
    assert!(!replayed, "its own earlier attempt's change");
    assert_eq!(app.assert_invariant(&entity.entity_id, "u-1").await.account.balance, 43, "spent once");
}

/// A keyless spend whose write landed but whose answer came too late is answered 503 naming
/// its generated key with the account version its change came after: the change keeps no
/// idempotency record (its entry keeps the outcome). The client sending that key back after
/// the change moved out, its key forgotten, gets the change from its entry, spent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_names_a_generated_key_whose_change_is_found_in_its_entry_after_it_moved() {
    let (app, entity) = granted_fifty().await;
    let (plain, slots) = (store(&app), AccountSlots::default());
    let account = AccountRef::user(&entity.entity_id, "u-1");
    let body = json!({"credits": 7});
    let spend = Change { operation: Operation::Decrement { credits: 7 }, ..grant_change(0) };
    let key_for = |header: Option<&str>| {
        IdempotencyKey::from_request(header.map(str::as_bytes), &entity.entity_id, "POST /test/spend", &body)
    };

    let gate = Gate::default();
    let losing = FaultyStore::losing_an_answer(store(&app), gate.clone());
    let (keyless, its_slots) = (key_for(None).expect("generated key"), AccountSlots::default());
    let late = shared::deadline::scope(
        Duration::from_millis(1_000),
        accounts::change(ledger(&losing, &app.clock, &its_slots), account, &spend, &keyless, |_, _| Ok(())),
    );
    let Err(shared::Error::Unavailable { unknown_outcome_key: Some(named) }) = late.await else {
        panic!("a 503 naming the key");
    };
    let after = account_of(&app, &entity).await.version - 1;
    assert_eq!(named, format!("{}@{after}", keyless.key), "the key and the version its write came after");
    accounts::settle(ledger(&plain, &app.clock, &slots), account).await.expect("move the spend out");
    let moved = account_of(&app, &entity).await;
    assert!(!moved.recent_keys.contains_key(&key_slot(&named)), "forgotten as it moved");

    let asked = key_for(Some(&named)).expect("the client's key");
    let answer = accounts::change(ledger(&plain, &app.clock, &slots), account, &spend, &asked, |_, _| Ok(())).await;
    assert!(answer.expect("the change, from its entry").replayed);
    assert_eq!(app.assert_invariant(&entity.entity_id, "u-1").await.account.balance, 43, "spent once");
    drop(gate);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_item_timed_out_is_not_recorded_and_its_retry_spends_once() {
    let (proxy, app, entity) = behind_a_slow_store().await;
    let batch = json!({"decrements": [{"userId": "u-1", "credits": 3, "reason": "batched"}]});
    let send = || {
        app.request(Method::POST, &entity.path("/users/decrement-credits"))
            .headers(&entity.server())
            .header("idempotency-key", "B")
            .json(batch.clone())
            .send()
    };
    slow_updates(&proxy, 4_000);
    let slow = send().await;
    assert_eq!(slow.data()["results"][0]["error"]["code"], "UNAVAILABLE", "{:?}", slow.body);
    slow_updates(&proxy, 0);
    let retry = send().await;
    assert_eq!(retry.data()["results"][0]["ok"], true, "{:?}", retry.body);
    let ledger = app.assert_invariant(&entity.entity_id, "u-1").await;
    let spent = ledger.entries.iter().filter(|e| e.reason.as_deref() == Some("batched")).count();
    assert_eq!((spent, ledger.account.balance), (1, 97));
}
