//! A hot account: many function instances, each a real OS process with its own caches and
//! account slots (`functions-process`), spending one balance at once through the store with
//! conflicts modeled as DynamoDB raises them (the shared fault proxy, no other fault). Every
//! request must be answered as if the account were not contended: no 5xx, exact counts,
//! exactly once per idempotency key, the ledger invariant intact.

use integration_tests::fixtures::EntityFixture;
use integration_tests::instances::{Answer, Instances, in_parallel, post, statuses};
use integration_tests::{TestApp, emulator};
use serde_json::{Value, json};

/// Function instances (OS processes) and concurrent clients, round-robin over them.
const PROCESSES: usize = 8;
const CLIENTS: usize = 64;

/// The service on a fresh table, `u-1` of a new entity holding `credits`, and PROCESSES
/// warm instances serving it.
async fn hot_account(credits: u64) -> (TestApp, EntityFixture, Instances) {
    let app = TestApp::start().await;
    let entity = app.funded(credits).await;
    let instances =
        Instances::start(env!("CARGO_BIN_EXE_functions-process"), PROCESSES, emulator::endpoint(), &app.table);
    (app, entity, instances)
}

/// Runs CLIENTS blocking clients at once off the async runtime; client `i` runs `work(i)`.
async fn clients<T: Send + 'static>(work: impl Fn(usize) -> T + Send + Sync + 'static) -> Vec<T> {
    tokio::task::spawn_blocking(move || in_parallel(CLIENTS, work)).await.expect("clients")
}

fn user_path(entity: &EntityFixture, rest: &str) -> String {
    entity.path(&format!("/users/u-1{rest}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_way_spends_of_one_on_a_hundred_credits_are_exact() {
    const SPENDS: usize = 200;
    let (app, entity, instances) = hot_account(100).await;
    let (origins, path, headers) =
        (instances.origins.clone(), user_path(&entity, "/decrement-credits"), entity.server());
    let per_client = clients(move |i| {
        (i..SPENDS)
            .step_by(CLIENTS)
            .map(|j| {
                post(
                    &origins[i % origins.len()],
                    &path,
                    &headers,
                    &json!({"credits": 1, "reason": format!("spend-{j}")}),
                )
            })
            .collect::<Vec<_>>()
    })
    .await;
    let answers: Vec<Answer> = per_client.into_iter().flatten().collect();
    let counts = statuses(&answers);
    println!("64-way spends over {PROCESSES} processes: {counts:?}");
    assert_eq!(answers.len(), SPENDS);
    assert_eq!(counts, [(200, 100), (402, 100)].into(), "exactly 100 × 200 and 100 × 402, nothing else");
    for answer in answers.iter().filter(|a| a.status == 402) {
        assert_eq!(answer.body["error"]["code"], "INSUFFICIENT_CREDITS", "{:?}", answer.body);
    }
    let mut ids: Vec<_> = answers.iter().filter_map(|a| a.body["data"]["entryId"].as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 100, "every success has its own entry");
    let ledger = app.assert_invariant(&entity.entity_id, "u-1").await;
    assert_eq!(ledger.account.balance, 0, "no oversell, nothing left unspent");
    assert_eq!(ledger.entries.iter().filter(|e| e.kind.as_str() == "decrement").count(), 100);
    drop(instances);
}

/// What one client of the mixed test did, and what the ledger must show for it.
#[derive(Default)]
struct Tally {
    granted: i64,
    spent: i64,
    captured: i64,
    /// (kind, count) of the entries its successes wrote.
    entries: std::collections::BTreeMap<&'static str, usize>,
    /// Every answer, with what it answered (for the no-5xx and allowed-status checks).
    answers: Vec<(&'static str, Answer)>,
}

impl Tally {
    fn record(&mut self, operation: &'static str, answer: Answer) -> Answer {
        self.answers.push((operation, answer.clone()));
        answer
    }

    fn wrote(&mut self, kind: &'static str) {
        *self.entries.entry(kind).or_insert(0) += 1;
    }
}

/// One client's rounds of the mixed test: by `client % 4` grants, spends, holds captured in
/// part, or holds released.
fn mixed_client(client: usize, origin: &str, entity: &EntityFixture) -> Tally {
    let server = entity.server();
    let call = |rest: &str, body: Value| post(origin, &user_path(entity, rest), &server, &body);
    let mut tally = Tally::default();
    for round in 0..3 {
        let tag = format!("c{client}-r{round}");
        match client % 4 {
            0 => {
                let answer = tally.record("grant", call("/buy-credits", json!({"credits": 5, "idempotencyKey": tag})));
                if answer.status == 200 {
                    tally.granted += 5;
                    tally.wrote("grant");
                }
            }
            1 => {
                let answer = tally.record("spend", call("/decrement-credits", json!({"credits": 3, "reason": tag})));
                if answer.status == 200 {
                    tally.spent += 3;
                    tally.wrote("decrement");
                }
            }
            kind => {
                let hold = tally.record("hold", call("/holds", json!({"credits": 4, "reason": tag})));
                if hold.status != 201 {
                    continue;
                }
                tally.wrote("hold");
                let hold_id = hold.body["data"]["holdId"].as_str().expect("holdId").to_owned();
                if kind == 2 {
                    let capture =
                        tally.record("capture", call(&format!("/holds/{hold_id}/capture"), json!({"credits": 2})));
                    if capture.status == 200 {
                        tally.captured += 2;
                        tally.wrote("capture");
                        // The part not captured is released, with an entry of its own.
                        if capture.body["data"]["released"].as_u64().unwrap_or(0) > 0 {
                            tally.wrote("release");
                        }
                    }
                } else {
                    let release = tally.record("release", call(&format!("/holds/{hold_id}/release"), json!({})));
                    if release.status == 200 {
                        tally.wrote("release");
                    }
                }
            }
        }
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_spends_grants_holds_and_captures_from_many_processes_add_up() {
    const START: i64 = 150;
    let (app, entity, instances) = hot_account(START as u64).await;
    let (origins, fixture) = (instances.origins.clone(), entity.clone());
    let tallies = clients(move |i| mixed_client(i, &origins[i % origins.len()], &fixture)).await;

    let answers: Vec<&(&str, Answer)> = tallies.iter().flat_map(|t| &t.answers).collect();
    let mut by_operation = std::collections::BTreeMap::new();
    for (operation, answer) in &answers {
        *by_operation.entry((*operation, answer.status)).or_insert(0) += 1;
    }
    println!("mixed, {CLIENTS} clients over {PROCESSES} processes, (operation, status) → count: {by_operation:?}");
    for (operation, answer) in &answers {
        assert!(answer.status < 500, "{operation} answered {}: {:?}", answer.status, answer.body);
        let allowed: &[u16] = match *operation {
            "grant" | "capture" | "release" => &[200],
            "spend" => &[200, 402],
            _ => &[201, 402],
        };
        assert!(allowed.contains(&answer.status), "{operation} answered {}: {:?}", answer.status, answer.body);
    }

    let (granted, spent, captured) =
        tallies.iter().fold((0, 0, 0), |(g, s, c), t| (g + t.granted, s + t.spent, c + t.captured));
    let ledger = app.assert_invariant(&entity.entity_id, "u-1").await;
    assert_eq!(ledger.account.balance, START + granted - spent - captured, "balance = grants − spends − captures");
    let mut expected = std::collections::BTreeMap::from([("grant", 1)]); // the funding grant
    for tally in &tallies {
        for (kind, n) in &tally.entries {
            *expected.entry(*kind).or_insert(0) += n;
        }
    }
    let mut written = std::collections::BTreeMap::new();
    for entry in &ledger.entries {
        *written.entry(entry.kind.as_str().to_owned()).or_insert(0) += 1;
    }
    let expected: std::collections::BTreeMap<String, usize> =
        expected.into_iter().map(|(k, n)| (k.to_owned(), n)).collect();
    assert_eq!(written, expected, "every success in the ledger exactly once, nothing else");
    assert!(ledger.account.holds.is_empty(), "every hold was captured or released: {:?}", ledger.account.holds);
    drop(instances);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_idempotency_key_from_many_processes_has_one_effect_and_one_answer() {
    let (app, entity, instances) = hot_account(100).await;
    let (origins, path) = (instances.origins.clone(), user_path(&entity, "/decrement-credits"));
    let mut headers = entity.server();
    headers.push(("idempotency-key".into(), "one-key-many-processes".into()));
    let answers = clients(move |i| post(&origins[i % origins.len()], &path, &headers, &json!({"credits": 7}))).await;

    let counts = statuses(&answers);
    let fresh = answers.iter().filter(|a| !a.replayed).count();
    println!("one key from {CLIENTS} clients over {PROCESSES} processes: {counts:?}, {fresh} not marked replayed");
    assert_eq!(counts, [(200, CLIENTS)].into(), "every caller succeeds");
    for answer in &answers {
        assert_eq!(answer.body, answers[0].body, "every caller gets the same answer");
    }
    assert_eq!(fresh, 1, "one request did it, every other one is answered as a replay");
    assert_eq!(answers[0].body["data"]["account"]["balance"], 93);
    let ledger = app.assert_invariant(&entity.entity_id, "u-1").await;
    assert_eq!(ledger.account.balance, 93, "one effect");
    assert_eq!(ledger.entries.len(), 2, "the funding grant and one spend");
    drop(instances);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn movers_of_one_account_take_turns_instead_of_colliding() {
    const SPENDS: usize = 256;
    let app = TestApp::start().await;
    let entity = app.funded(1_000).await;
    // A proxy of this test's own, so its counts are this test's requests only.
    let proxy = emulator::proxy(&[]);
    let instances = Instances::start(env!("CARGO_BIN_EXE_functions-process"), PROCESSES, &proxy.endpoint, &app.table);
    let (origins, path, headers) =
        (instances.origins.clone(), user_path(&entity, "/decrement-credits"), entity.server());
    let answers: Vec<Answer> = clients(move |i| {
        let origin = &origins[i % origins.len()];
        (i..SPENDS).step_by(CLIENTS).map(|_| post(origin, &path, &headers, &json!({"credits": 1}))).collect::<Vec<_>>()
    })
    .await
    .into_iter()
    .flatten()
    .collect();
    assert_eq!(statuses(&answers), [(200, SPENDS)].into());

    let stats: Value = serde_json::from_str(&emulator::control(&proxy.endpoint, "GET", "/_proxy/stats", "")).unwrap();
    let (puts, transactions) = (&stats["by_target"]["PutItem"], &stats["by_target"]["TransactWriteItems"]);
    println!(
        "{SPENDS} spends from {CLIENTS} clients over {PROCESSES} processes; puts: {puts}; transactions: {transactions}"
    );
    // Each keyless spend moves out as its entry alone (no idempotency record: the entry keeps
    // its outcome), a single put, or in one transaction with the entries of a move that found
    // more than a few records; the last records may still be in the journal, and a mover that
    // took over a lapsed claim may write one journal's worth again.
    let count = |target: &Value| target["forwarded"].as_u64().unwrap_or(0) as usize;
    let writes = count(puts) + count(transactions);
    let journal = 2 * shared::domain::journal::MAX_JOURNAL;
    assert!(writes <= SPENDS + journal, "each record moved once, as its entry, mostly: {writes} writes");
    let ledger = app.assert_invariant(&entity.entity_id, "u-1").await;
    assert_eq!(ledger.account.balance, 1_000 - SPENDS as i64);
    drop(instances);
}
