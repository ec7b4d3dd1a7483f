//! The built `medkit-broadcast` and `medkit-fanout` bootstraps under a local
//! Runtime API.

use std::process::Stdio;
use std::time::Duration;

use medkit::runtime_stub::{Outcome, Running, RuntimeStub, medkit_env, run_to_exit};

#[tokio::test]
async fn both_need_the_websocket_endpoint_and_say_so() {
    let stub = RuntimeStub::start().await;
    for bin in [
        env!("CARGO_BIN_EXE_medkit-broadcast"),
        env!("CARGO_BIN_EXE_medkit-fanout"),
    ] {
        let mut cmd = stub.command(bin.as_ref());
        cmd.envs(
            medkit_env()
                .into_iter()
                .filter(|(k, _)| *k != "MEDKIT_WS_ENDPOINT"),
        );
        let (code, out) = run_to_exit(cmd, Duration::from_secs(20));
        assert!(
            matches!(code, Some(c) if c != 0),
            "{bin}: exit {code:?}: {out}"
        );
        assert!(out.contains("MEDKIT_WS_ENDPOINT"), "{bin}: {out}");
    }
}

#[tokio::test]
async fn the_fan_out_worker_survives_a_malformed_event() {
    let stub = RuntimeStub::start().await;
    let mut cmd = stub.command(env!("CARGO_BIN_EXE_medkit-fanout").as_ref());
    cmd.envs(medkit_env())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _fn = Running(cmd.spawn().unwrap());
    let malformed = stub.push(r#"{"Records": "not a list"}"#);
    let empty = stub.push(r#"{"Records": []}"#);
    let wait = Duration::from_secs(20);
    assert!(matches!(
        stub.outcome(&malformed, wait).await,
        Some(Outcome::Error { .. })
    ));
    let answer = stub.outcome(&empty, wait).await.expect("served after it");
    assert!(matches!(answer, Outcome::Response { .. }), "{answer:?}");
    assert_eq!(
        answer.body_json()["batchItemFailures"],
        serde_json::json!([])
    );
}
