use shared::config::Needs;
use shared::lambda::{BoxError, run};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    run(Needs { webhook: true, ..Needs::default() }, webhook::router).await
}
