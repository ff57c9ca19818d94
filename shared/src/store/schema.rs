//! The table's definition: the one source for the local table-creation command and the tests
//! (the infra template is checked against it).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TimeToLiveSpecification,
};

use crate::store::keys::{PK, SK, TTL};

/// Creates the table if it does not exist yet and turns on TTL.
pub async fn create_table(client: &Client, table: &str) -> Result<(), aws_sdk_dynamodb::Error> {
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attribute(PK))
        .attribute_definitions(string_attribute(SK))
        .key_schema(key(PK, KeyType::Hash))
        .key_schema(key(SK, KeyType::Range))
        .send()
        .await;
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

/// The schema as JSON, for the infra parity test: `create-table --print-schema`.
pub fn describe() -> serde_json::Value {
    serde_json::json!({
        "keySchema": [{"AttributeName": PK, "KeyType": "HASH"}, {"AttributeName": SK, "KeyType": "RANGE"}],
        "attributeDefinitions": [{"AttributeName": PK, "AttributeType": "S"}, {"AttributeName": SK, "AttributeType": "S"}],
        "globalSecondaryIndexes": [],
        "ttlAttribute": TTL,
        "billingMode": "PAY_PER_REQUEST",
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
