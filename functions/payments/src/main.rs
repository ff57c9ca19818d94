use shared::config::Needs;
use shared::lambda::{BoxError, run_with_payments};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    run_with_payments(Needs { stripe: true, ..Needs::default() }, payments::router).await
}
