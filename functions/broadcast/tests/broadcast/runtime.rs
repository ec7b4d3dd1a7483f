//! The built `medkit-broadcast` and `medkit-fanout` bootstraps under a local
//! Runtime API.

use medkit::testing::runtime_stub::{
    RuntimeStub, assert_init_fails_naming, assert_survives_malformed,
};

#[tokio::test]
async fn both_need_the_websocket_endpoint_and_say_so() {
    let stub = RuntimeStub::start().await;
    for bin in [
        env!("CARGO_BIN_EXE_medkit-broadcast"),
        env!("CARGO_BIN_EXE_medkit-fanout"),
    ] {
        assert_init_fails_naming(&stub, bin.as_ref(), "MEDKIT_WS_ENDPOINT", None);
    }
}

#[tokio::test]
async fn the_fan_out_worker_survives_a_malformed_event() {
    let stub = RuntimeStub::start().await;
    let bin = env!("CARGO_BIN_EXE_medkit-fanout");
    let malformed = [r#"{"Records": "not a list"}"#];
    let answer =
        assert_survives_malformed(&stub, bin.as_ref(), &malformed, r#"{"Records": []}"#.into())
            .await;
    assert_eq!(
        answer.body_json()["batchItemFailures"],
        serde_json::json!([])
    );
}
