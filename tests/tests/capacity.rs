//! What a request consumed of DynamoDB's capacity reaches its meter, in the units DynamoDB
//! bills (the emulator sizes items by AWS's rules): every call asks for it, whoever wrote it.

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::emulator;
use shared::store::dynamo::capacity::{Units, metered};

#[tokio::test]
async fn every_store_call_of_a_request_is_metered_in_billed_units() {
    let client = emulator::client().await;
    let table = format!("cap-{}", ulid::Ulid::new().to_string().to_lowercase());
    shared::store::schema::create_table(&client, &table).await.expect("table");
    let item = [
        ("pk", AttributeValue::S("p".into())),
        ("sk", AttributeValue::S("s".into())),
        // 3.5 KB of value: 4 write units to write, 1 read unit to read strongly.
        ("v", AttributeValue::S("x".repeat(3_500))),
    ]
    .map(|(name, value)| (name.to_owned(), value))
    .into_iter()
    .collect::<std::collections::HashMap<_, _>>();
    let key: std::collections::HashMap<_, _> =
        item.iter().filter(|(name, _)| *name != "v").map(|(n, v)| (n.clone(), v.clone())).collect();

    let (written, units) = metered(client.put_item().table_name(&table).set_item(Some(item)).send()).await;
    written.expect("put");
    assert_eq!(units, Units { read: 0.0, write: 4.0 });

    let read = async {
        client
            .get_item()
            .table_name(&table)
            .set_key(Some(key.clone()))
            .consistent_read(true)
            .send()
            .await
            .expect("get");
        client.get_item().table_name(&table).set_key(Some(key.clone())).send().await.expect("get");
    };
    let ((), units) = metered(read).await;
    assert_eq!(units, Units { read: 1.5, write: 0.0 }, "strongly consistent 1, eventually 0.5");
    let (_, outside) = metered(async {}).await;
    assert_eq!(outside, Units::default());
}

/// Units on one table's keys from the emulator's meter: (write, read) by key kind (`ACCOUNT`,
/// `IDEM`, ...), and the largest account item any request met.
fn metered_by_kind(table: &str) -> (std::collections::BTreeMap<String, (f64, f64)>, u64) {
    let (_, body) =
        emulator::call(emulator::emulator_endpoint(), "GET", "/_emulator/capacity?sort_key=ACCOUNT", &[], "");
    let meter: serde_json::Value = serde_json::from_str(&body).expect("meter");
    let mut by_kind = std::collections::BTreeMap::new();
    let mut account_peak = 0;
    for key in meter["keys"].as_array().into_iter().flatten().filter(|k| k["table"] == table) {
        let kind = key["key"]["S"].as_str().unwrap_or("").split('#').next().unwrap_or("").to_owned();
        let units: &mut (f64, f64) = by_kind.entry(kind).or_default();
        units.0 += key["write_units"].as_f64().unwrap_or(0.0);
        units.1 += key["read_units"].as_f64().unwrap_or(0.0);
        account_peak = account_peak.max(key["peak_item_bytes_by_sort_key"]["ACCOUNT"].as_u64().unwrap_or(0));
    }
    (by_kind, account_peak)
}

/// What a keyless spend costs, one at a time on a warm instance (real clock): the units
/// DynamoDB would bill, moves and trims included. Its record keeps no idempotency record (its
/// key is generated: its entry keeps the outcome) and its key is forgotten as it moves, so
/// the account item stays within 1 KB: 2.5 write units per spend all-in (an append of 1, a
/// move every 2 records as 1 entry put each and a trim of 1). Before (format 2, a move every 4
/// records, an idempotency record per spend, keys kept 1 s): 4.4–4.9. The target: 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyless_spend_costs_a_bounded_number_of_units_and_the_account_item_stays_small() {
    const SPENDS: usize = 128;
    let app = integration_tests::TestApp::start().await;
    let entity = app.funded(1_000).await;
    let instances = integration_tests::instances::Instances::start(
        env!("CARGO_BIN_EXE_functions-process"),
        1,
        emulator::endpoint(),
        &app.table,
    );
    let (origin, path, headers) =
        (instances.origins[0].clone(), entity.path("/users/u-1/decrement-credits"), entity.server());
    let warm = serde_json::json!({"credits": 1});
    assert_eq!(integration_tests::instances::post(&origin, &path, &headers, &warm).status, 200);
    let (before, _) = metered_by_kind(&app.table);
    let statuses = tokio::task::spawn_blocking(move || {
        (0..SPENDS)
            .map(|_| integration_tests::instances::post(&origin, &path, &headers, &warm).status)
            .collect::<Vec<_>>()
    })
    .await
    .expect("spends");
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let (after, account_peak) = metered_by_kind(&app.table);
    let per_spend = |kind: &str| {
        let (b, a) = (before.get(kind).copied().unwrap_or_default(), after.get(kind).copied().unwrap_or_default());
        ((a.0 - b.0) / SPENDS as f64, (a.1 - b.1) / SPENDS as f64)
    };
    let (account, idem) = (per_spend("ACCOUNT"), per_spend("IDEM"));
    let all_in = after.keys().map(|kind| per_spend(kind).0).sum::<f64>();
    let reads = after.keys().map(|kind| per_spend(kind).1).sum::<f64>();
    println!(
        "per spend: account key {account:?}, idempotency {idem:?}, all-in write {all_in:.2}, read {reads:.2}; account item peak {account_peak} B"
    );
    assert_eq!(idem.0, 0.0, "a keyless spend writes no idempotency record");
    assert!(all_in <= 3.0, "write units per spend, all-in: {all_in:.2}");
    assert!(reads <= 0.1, "a warm spend reads nothing: {reads:.2} read units per spend");
    assert!(account_peak <= 1_024, "the account item peaked at {account_peak} B: past 1 KB a write costs 2 units");
    app.assert_invariant(&entity.entity_id, "u-1").await;
    drop(instances);
}
