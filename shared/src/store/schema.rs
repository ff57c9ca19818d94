//! The table's definition: the one source for the local table-creation command and the tests
//! (the infra template is checked against it).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, StreamSpecification,
    StreamViewType, TimeToLiveSpecification,
};

use crate::store::keys::{PK, SK, TTL};

/// The table's key: every key attribute is a string. No secondary indexes.
const KEYS: [(&str, KeyType); 2] = [(PK, KeyType::Hash), (SK, KeyType::Range)];

/// The table's stream feeds the events dispatcher: ledger entries are inserts, payment and
/// subscription changes need the image before and after.
const STREAM_VIEW: StreamViewType = StreamViewType::NewAndOldImages;

/// Creates the table (with its stream) if it does not exist yet and turns on TTL.
pub async fn create_table(client: &Client, table: &str) -> Result<(), aws_sdk_dynamodb::Error> {
    let stream = StreamSpecification::builder().stream_enabled(true).stream_view_type(STREAM_VIEW).build()?;
    let mut request =
        client.create_table().table_name(table).billing_mode(BillingMode::PayPerRequest).stream_specification(stream);
    for (name, key_type) in KEYS {
        request = request.attribute_definitions(string_attribute(name)).key_schema(key(name, key_type));
    }
    let created = request.send().await;
    match created {
        Ok(_) => {}
        Err(err) if err.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => {
            return Ok(());
        }
        Err(err) => return Err(err.into()),
    }
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(TimeToLiveSpecification::builder().attribute_name(TTL).enabled(true).build()?)
        .send()
        .await?;
    Ok(())
}

/// The schema as JSON, for the infra parity test: `create-table --print-schema`. Built from
/// the same `KEYS` as `create_table`, so the two cannot drift apart.
pub fn describe() -> serde_json::Value {
    let key_schema: Vec<_> = KEYS
        .iter()
        .map(|(name, key_type)| serde_json::json!({"AttributeName": name, "KeyType": key_type.as_str()}))
        .collect();
    let attributes: Vec<_> = KEYS
        .iter()
        .map(|(name, _)| serde_json::json!({"AttributeName": name, "AttributeType": ScalarAttributeType::S.as_str()}))
        .collect();
    serde_json::json!({
        "keySchema": key_schema,
        "attributeDefinitions": attributes,
        "globalSecondaryIndexes": [],
        "ttlAttribute": TTL,
        "billingMode": BillingMode::PayPerRequest.as_str(),
        "streamViewType": STREAM_VIEW.as_str(),
    })
}

fn string_attribute(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("name and type are set")
}

fn key(name: &str, key_type: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder().attribute_name(name).key_type(key_type).build().expect("name and type are set")
}
