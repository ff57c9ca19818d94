use shared::config::Needs;
use shared::lambda::{BoxError, run};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    run(Needs::default(), webhooks::router).await
}
