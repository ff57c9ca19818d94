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
