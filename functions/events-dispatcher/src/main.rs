use lambda_runtime::{LambdaEvent, service_fn};
use shared::lambda::BoxError;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    shared::telemetry::init();
    let dispatcher = events_dispatcher::from_env().await?;
    let dispatcher = &dispatcher;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let budget = events_dispatcher::budget(event.context.deadline());
        let handled = events_dispatcher::handle(dispatcher, event.payload, budget);
        let (answer, units) = shared::store::dynamo::capacity::metered(handled).await;
        tracing::info!(read_units = units.read, write_units = units.write, "invocation done");
        answer.map_err(BoxError::from)
    }))
    .await
}
