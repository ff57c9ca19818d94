use shared::config::Needs;
use shared::lambda::{BoxError, run_with_payments};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    run_with_payments(Needs { webhook: true, ..Needs::default() }, webhook::router).await
}
