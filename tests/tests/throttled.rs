//! An account under more load than its partition can take. This binary's emulator throttles
//! every partition key as DynamoDB does, at a tenth of DynamoDB's write budget (100 units a
//! second) so that the local stack's pace exceeds it: the service answers the excess 503 —
//! never 500 — loses and doubles nothing, and keeps the account item bounded.

use integration_tests::instances::{Answer, Instances, in_parallel, post, statuses};
use integration_tests::{TestApp, emulator};
use serde_json::{Value, json};

const PROCESSES: usize = 8;
const CLIENTS: usize = 32;
const SPENDS: usize = 256;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_over_its_partitions_budget_answers_the_excess_503_and_stays_exact() {
    let config = json!({"throttle": true, "write_units_per_second": 100});
    emulator::control(emulator::emulator_endpoint(), "POST", "/_emulator/config", &config.to_string());
    let app = TestApp::start().await;
    let entity = app.funded(1_000).await;
    let instances =
        Instances::start(env!("CARGO_BIN_EXE_functions-process"), PROCESSES, emulator::endpoint(), &app.table);
    let (origins, path, headers) =
        (instances.origins.clone(), entity.path("/users/u-1/decrement-credits"), entity.server());
    let answers: Vec<Answer> = tokio::task::spawn_blocking(move || {
        in_parallel(CLIENTS, |i| {
            let origin = &origins[i % origins.len()];
            (i..SPENDS)
                .step_by(CLIENTS)
                .map(|_| post(origin, &path, &headers, &json!({"credits": 1})))
                .collect::<Vec<_>>()
        })
    })
    .await
    .expect("clients")
    .into_iter()
    .flatten()
    .collect();

    let (_, meter) = emulator::call(emulator::emulator_endpoint(), "GET", "/_emulator/capacity", &[], "");
    let meter: Value = serde_json::from_str(&meter).expect("meter");
    let counts = statuses(&answers);
    println!(
        "{SPENDS} spends, {CLIENTS} clients, {PROCESSES} processes, 100 write units/s: {counts:?}; throttled {}",
        meter["throttled"]
    );
    assert!(meter["throttled"].as_u64().unwrap_or(0) > 0, "the store really throttled: {}", meter["throttled"]);
    assert!(counts.keys().all(|status| [200, 503].contains(status)), "only 200 and 503: {counts:?}");
    for answer in answers.iter().filter(|a| a.status == 503) {
        assert_eq!(answer.body["error"]["code"], "UNAVAILABLE", "{}", answer.body);
    }
    emulator::control(emulator::emulator_endpoint(), "POST", "/_emulator/config", r#"{"throttle": false}"#);
    let ledger = app.assert_invariant(&entity.entity_id, "u-1").await;
    let journal = ledger.account.journal.len();
    assert!(journal <= shared::domain::journal::MAX_JOURNAL, "the item stays bounded: {journal} records");
    let spent = counts.get(&200).copied().unwrap_or(0);
    assert_eq!(ledger.account.balance, 1_000 - spent as i64, "every 200 counted once");
    assert_eq!(ledger.entries.iter().filter(|e| e.kind.as_str() == "decrement").count(), spent);
    drop(instances);
}
