//! The built `medkit-socket` bootstrap under a local Runtime API.

use std::process::Stdio;
use std::time::Duration;

use medkit::runtime_stub::{Outcome, Running, RuntimeStub, medkit_env, run_to_exit};
use medkit::testing::sample_events;

fn bootstrap() -> std::path::PathBuf {
    env!("CARGO_BIN_EXE_medkit-socket").into()
}

#[tokio::test]
async fn bad_environment_fails_at_init_naming_the_variable() {
    let stub = RuntimeStub::start().await;
    let mut cmd = stub.command(&bootstrap());
    cmd.envs(
        medkit_env()
            .into_iter()
            .filter(|(k, _)| *k != "MEDKIT_CONNECTIONS_TABLE"),
    );
    let (code, out) = run_to_exit(cmd, Duration::from_secs(20));
    assert!(matches!(code, Some(c) if c != 0), "exit {code:?}: {out}");
    assert!(out.contains("MEDKIT_CONNECTIONS_TABLE"), "{out}");
}

#[tokio::test]
async fn a_malformed_event_is_an_error_and_the_next_one_is_served() {
    let stub = RuntimeStub::start().await;
    let mut cmd = stub.command(&bootstrap());
    cmd.envs(medkit_env())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _fn = Running(cmd.spawn().unwrap());
    let malformed = stub.push(r#"{"requestContext": 42}"#);
    let ping = sample_events("socket")
        .into_iter()
        .find(|(name, _)| name.contains("default"))
        .expect("a $default sample event")
        .1;
    let valid = stub.push(ping);
    let wait = Duration::from_secs(20);
    assert!(
        matches!(
            stub.outcome(&malformed, wait).await,
            Some(Outcome::Error { .. })
        ),
        "a malformed event is an invocation error"
    );
    let answer = stub.outcome(&valid, wait).await.expect("served after it");
    assert!(matches!(answer, Outcome::Response { .. }), "{answer:?}");
    assert_eq!(answer.body_json()["statusCode"], 200);
}
