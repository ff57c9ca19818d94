use lambda_runtime::{LambdaEvent, service_fn};
use shared::lambda::BoxError;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    shared::telemetry::init();
    let dispatcher = events_dispatcher::from_env().await?;
    let dispatcher = &dispatcher;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let budget = events_dispatcher::budget(event.context.deadline());
        events_dispatcher::handle(dispatcher, event.payload, budget).await.map_err(BoxError::from)
    }))
    .await
}
