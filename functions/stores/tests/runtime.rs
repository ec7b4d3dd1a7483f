//! The built `medkit-stores` bootstrap under a local Runtime API: bad
//! environment fails at init naming the variable; a malformed event is an
//! invocation error and the next event is still served.

use std::process::Stdio;
use std::time::Duration;

use medkit::runtime_stub::{Outcome, Running, RuntimeStub, medkit_env, run_to_exit};
use medkit::testing::sample_events;

fn bootstrap() -> std::path::PathBuf {
    env!("CARGO_BIN_EXE_medkit-stores").into()
}

#[tokio::test]
async fn bad_environment_fails_at_init_naming_the_variable() {
    let stub = RuntimeStub::start().await;
    let cases: [(&str, Option<&str>); 4] = [
        ("MEDKIT_STORES_TABLE", None),
        ("MEDKIT_EXTENSIONS", Some("no-colon-here")),
        ("MEDKIT_STATE_TTL_DAYS", Some("thirty")),
        ("MEDKIT_WS_ENDPOINT", Some("not a url")),
    ];
    for (var, value) in cases {
        let mut cmd = stub.command(&bootstrap());
        for (k, v) in medkit_env() {
            if k != var {
                cmd.env(k, v);
            }
        }
        if let Some(v) = value {
            cmd.env(var, v);
        }
        let (code, out) = run_to_exit(cmd, Duration::from_secs(20));
        assert!(
            matches!(code, Some(c) if c != 0),
            "{var}: exit {code:?}: {out}"
        );
        assert!(out.contains(var), "{var} not named: {out}");
        assert!(
            !out.contains("panicked"),
            "{var}: a panic, not an init error: {out}"
        );
    }
}

#[tokio::test]
async fn a_malformed_event_is_an_error_and_the_next_one_is_served() {
    let stub = RuntimeStub::start().await;
    let mut cmd = stub.command(&bootstrap());
    cmd.envs(medkit_env())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _fn = Running(cmd.spawn().unwrap());

    let malformed = stub.push(r#"{"this is": "not an API Gateway event"}"#);
    let garbage = stub.push("not even JSON");
    // A valid request that needs no table: refused for its missing token.
    let (_, event) = &sample_events("stores")[2];
    let mut event: serde_json::Value = serde_json::from_str(event).unwrap();
    event["headers"]
        .as_object_mut()
        .unwrap()
        .remove("authorization");
    let valid = stub.push(event.to_string());

    let wait = Duration::from_secs(20);
    for id in [&malformed, &garbage] {
        match stub.outcome(id, wait).await {
            Some(o @ Outcome::Error { .. }) => {
                let body = o.body_json();
                assert!(body["errorType"].is_string(), "{body}");
                assert!(body["errorMessage"].is_string(), "{body}");
            }
            other => panic!("{id}: expected an invocation error, got {other:?}"),
        }
    }
    match stub.outcome(&valid, wait).await {
        Some(o @ Outcome::Response { .. }) => {
            let body = o.body_json();
            assert_eq!(body["statusCode"], 401, "{body}");
            let reason: serde_json::Value =
                serde_json::from_str(body["body"].as_str().unwrap()).unwrap();
            assert!(reason["reason"].is_string(), "{reason}");
        }
        other => panic!("the function stopped serving: {other:?}"),
    }
    assert!(stub.init_error().is_none());
}
