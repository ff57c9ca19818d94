//! schemathesis against every operation of docs/openapi.json, served by the real functions
//! (on one local listener, `TestApp::serve`) over a real emulator, with an entity's server
//! credentials and the admin bearer injected and `{entityId}` (path and query) fixed to that entity, so the
//! fuzz reaches the handlers instead of stopping at 403. Positive and negative data; checks:
//! no server error, status code documented, content type documented, body conforms.
//!
//! Bounded for `make test` (`FUZZ_MAX_EXAMPLES` per operation, default 15, seed
//! `FUZZ_SEED`, default 1); `make fuzz-long` raises the budget and adds a time limit
//! (`FUZZ_MAX_TIME` seconds).

use std::path::Path;
use std::process::Command;

use axum::http::{Method, StatusCode};
use integration_tests::fixtures::admin;
use integration_tests::openapi::DOCUMENT_PATH;
use integration_tests::{TestApp, WORKSPACE};
use serde_json::json;

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let schemathesis = format!("{WORKSPACE}/.venv/bin/schemathesis");
    assert!(
        Path::new(&schemathesis).exists(),
        "{schemathesis} is missing: run `make venv` (tests/openapi/requirements.txt)"
    );
    let app = TestApp::start().await;
    let entity = app.entity(&["owner-1"]).await;
    // Something to find: a tier and a funded user.
    let tier = app
        .request(Method::POST, &entity.path("/credit-tiers"))
        .headers(&entity.server())
        .json(json!({"creditTierId": "starter", "name": "Starter", "credits": 100, "price": 999}))
        .send()
        .await;
    assert_eq!(tier.status, StatusCode::CREATED, "{}", tier.body);
    app.grant(&entity, "u-42", 1000).await;

    let origin = app.serve();
    let config = std::env::temp_dir().join(format!("schemathesis-{}.toml", std::process::id()));
    let id = &entity.entity_id;
    std::fs::write(&config, format!("[parameters]\n\"path.entityId\" = \"{id}\"\n\"query.entityId\" = \"{id}\"\n"))
        .expect("config");
    let mut fuzz = Command::new(&schemathesis);
    fuzz.arg("--config-file").arg(&config).arg("run").arg(DOCUMENT_PATH);
    fuzz.args(["--url", &origin, "--workers", "1", "--no-shrink"]);
    fuzz.args([
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
    ]);
    fuzz.args(["--max-examples", &setting("FUZZ_MAX_EXAMPLES", "15"), "--seed", &setting("FUZZ_SEED", "1")]);
    if let Ok(seconds) = std::env::var("FUZZ_MAX_TIME") {
        fuzz.args(["--max-time", &seconds]);
    }
    for (name, value) in entity.server().into_iter().chain(admin()) {
        fuzz.args(["-H", &format!("{name}: {value}")]);
    }
    // schemathesis keeps its cache of crashes in the working directory: under target/, not in the tree.
    fuzz.current_dir(format!("{WORKSPACE}/target"));
    fuzz.env("NO_PROXY", "127.0.0.1,localhost").env("no_proxy", "127.0.0.1,localhost");
    for proxy in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
        fuzz.env_remove(proxy);
    }
    let status =
        tokio::task::spawn_blocking(move || fuzz.status()).await.expect("fuzz task").expect("run schemathesis");
    let _ = std::fs::remove_file(&config);
    assert!(status.success(), "schemathesis found problems ({status}); its report is above");
}
