//! The built `medkit-auth` bootstrap under a local Runtime API: a missing
//! variable fails at init naming it; a malformed event is an invocation
//! error and the function goes on serving.

use std::process::Stdio;
use std::time::Duration;

use medkit::runtime_stub::{Outcome, Running, RuntimeStub, medkit_env, run_to_exit};

fn bootstrap() -> std::path::PathBuf {
    env!("CARGO_BIN_EXE_medkit-auth").into()
}

#[tokio::test]
async fn a_missing_variable_fails_at_init_naming_it() {
    let stub = RuntimeStub::start().await;
    let mut cmd = stub.command(&bootstrap());
    cmd.envs(
        medkit_env()
            .into_iter()
            .filter(|(k, _)| *k != "MEDKIT_AUTH_TABLE"),
    );
    let (code, out) = run_to_exit(cmd, Duration::from_secs(20));
    assert!(matches!(code, Some(c) if c != 0), "exit {code:?}: {out}");
    assert!(out.contains("MEDKIT_AUTH_TABLE"), "{out}");
}

#[tokio::test]
async fn a_malformed_event_is_an_error_and_the_next_one_is_served() {
    let stub = RuntimeStub::start().await;
    let mut cmd = stub.command(&bootstrap());
    cmd.envs(medkit_env())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _fn = Running(cmd.spawn().unwrap());
    let malformed = stub.push("[1, 2, 3]");
    // No Authorization header: refused without touching a table.
    let valid = stub.push(
        serde_json::json!({
            "version": "2.0", "routeKey": "$default", "rawPath": "/v1/e/unknown_route",
            "rawQueryString": "", "headers": {},
            "requestContext": {"accountId": "1", "apiId": "local", "domainName": "local",
                "domainPrefix": "local", "http": {"method": "GET", "path": "/v1/e/unknown_route",
                "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"},
                "requestId": "r", "routeKey": "$default", "stage": "$default",
                "time": "01/Jan/2026:00:00:00 +0000", "timeEpoch": 0},
            "isBase64Encoded": false
        })
        .to_string(),
    );
    let wait = Duration::from_secs(20);
    assert!(matches!(
        stub.outcome(&malformed, wait).await,
        Some(Outcome::Error { .. })
    ));
    let answer = stub.outcome(&valid, wait).await.expect("served after it");
    let body = answer.body_json();
    assert!(matches!(answer, Outcome::Response { .. }), "{body}");
    assert_eq!(body["statusCode"], 404, "{body}");
}
