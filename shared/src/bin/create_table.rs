//! Creates the service's table (local emulator or AWS), or prints its schema.
//!
//! `create-table` uses `TABLE_NAME` and the standard AWS environment
//! (`AWS_ENDPOINT_URL_DYNAMODB` for an emulator); `create-table --print-schema` prints the
//! key schema as JSON for the infra parity test, with the HTTP functions' timeout
//! (`functionTimeoutSeconds`, from the request budget), which the template must use.

use shared::store::schema;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--print-schema") {
        let mut described = schema::describe();
        described["functionTimeoutSeconds"] = shared::deadline::FUNCTION_TIMEOUT_SECONDS.into();
        println!("{}", serde_json::to_string_pretty(&described)?);
        return Ok(());
    }
    let table = std::env::var("TABLE_NAME").map_err(|_| "missing required environment variable TABLE_NAME")?;
    let client = shared::clients::dynamodb().await;
    schema::create_table(&client, &table).await?;
    println!("table {table} is ready");
    Ok(())
}
