//! schemathesis against every operation of docs/openapi.json, served by the real functions
//! (on one local listener, `TestApp::serve`) over a real emulator, twice: with an entity's
//! server credentials and the admin bearer injected, then (the /api operations) with one
//! user's session and `{userId}` fixed to that user; `{entityId}` (path and query) is that
//! entity's, so the fuzz reaches the handlers instead of stopping at 403. Positive and
//! negative data; checks: no server error, status code documented, content type documented,
//! body conforms.
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

/// The user whose session the second run uses (funded, so spends and holds go through).
const USER: &str = "u-42";

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
    app.grant(&entity, USER, 1000).await;

    let user_token = app.token(&entity, USER).await;
    let origin = app.serve();
    let id = entity.entity_id.as_str();
    // As the entity's backend (and the admin): every operation.
    let server: Vec<_> = entity.server().into_iter().chain(admin()).collect();
    let as_server =
        Run { parameters: vec![("path.entityId", id), ("query.entityId", id)], headers: server, only: None };
    // As one user's session: the /api operations, on that user's own account.
    let as_user = Run {
        parameters: vec![("path.entityId", id), ("query.entityId", id), ("path.userId", USER)],
        headers: entity.session(USER, &user_token),
        only: Some("^/api/"),
    };
    for (role, run) in [("server", as_server), ("user session", as_user)] {
        let status = run.against(&schemathesis, &origin).await;
        assert!(status.success(), "schemathesis as the {role} found problems ({status}); its report is above");
    }
}

/// One schemathesis run: fixed parameters, injected credentials, optionally only the
/// operations whose path matches `only`.
struct Run<'a> {
    parameters: Vec<(&'a str, &'a str)>,
    headers: Vec<(String, String)>,
    only: Option<&'a str>,
}

impl Run<'_> {
    async fn against(&self, schemathesis: &str, origin: &str) -> std::process::ExitStatus {
        let config = std::env::temp_dir().join(format!("schemathesis-{}.toml", std::process::id()));
        let parameters: String =
            self.parameters.iter().map(|(name, value)| format!("\"{name}\" = \"{value}\"\n")).collect();
        std::fs::write(&config, format!("[parameters]\n{parameters}")).expect("config");
        let mut fuzz = Command::new(schemathesis);
        fuzz.arg("--config-file").arg(&config).arg("run").arg(DOCUMENT_PATH);
        fuzz.args(["--url", origin, "--workers", "1", "--no-shrink"]);
        fuzz.args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ]);
        fuzz.args(["--max-examples", &setting("FUZZ_MAX_EXAMPLES", "15"), "--seed", &setting("FUZZ_SEED", "1")]);
        if let Ok(seconds) = std::env::var("FUZZ_MAX_TIME") {
            fuzz.args(["--max-time", &seconds]);
        }
        if let Some(pattern) = self.only {
            fuzz.args(["--include-path-regex", pattern]);
        }
        for (name, value) in &self.headers {
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
        status
    }
}
