use shared::config::Needs;
use shared::lambda::{BoxError, run};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    run(Needs { admin: true }, admin::router).await
}
