//! One warm instance of every function as its own OS process, as Lambda runs each concurrent
//! request in its own instance: its own caches, account slots and SDK client. Serves every
//! function on `127.0.0.1:0` (path → function as API Gateway routes), prints
//! `READY http://127.0.0.1:<port>` and runs until its stdin reaches EOF (the test that
//! started it ended or dropped it).
//!
//! Usage: functions-process --store <DynamoDB URL> --table <name> [--stripe <URL>]

use std::io::{Read, Write};

use integration_tests::TestApp;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: functions-process --store <DynamoDB URL> --table <name> [--stripe <URL>]";
    let store = arg(&args, "--store").expect(usage);
    let table = arg(&args, "--table").expect(usage);
    // Nothing here pays: an address where nothing listens stands in for Stripe.
    let stripe = arg(&args, "--stripe").unwrap_or_else(|| "http://127.0.0.1:9".to_owned());
    let app = TestApp::attach(&store, &table, &stripe).await;
    let origin = app.serve();
    let mut stdout = std::io::stdout();
    writeln!(stdout, "READY {origin}").and_then(|()| stdout.flush()).expect("write READY");
    tokio::task::spawn_blocking(|| {
        let mut buffer = [0u8; 256];
        while matches!(std::io::stdin().read(&mut buffer), Ok(n) if n > 0) {}
    })
    .await
    .expect("stdin watcher");
}
