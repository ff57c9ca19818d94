use shared::config::Needs;
use shared::lambda::{BoxError, run};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    run(Needs { admin: true, ..Needs::default() }, admin::router).await
}
