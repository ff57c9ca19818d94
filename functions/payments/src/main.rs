use shared::config::Needs;
use shared::lambda::{BoxError, run};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    run(Needs { stripe: true, ..Needs::default() }, payments::router).await
}
