//! The built `medkit-stores` bootstrap under a local Runtime API: bad
//! environment fails at init naming the variable; a malformed event is an
//! invocation error and the next event is still served.

use medkit::testing::runtime_stub::{
    RuntimeStub, assert_init_fails_naming, assert_survives_malformed, unauthenticated_http_event,
};

fn bootstrap() -> std::path::PathBuf {
    env!("CARGO_BIN_EXE_medkit-stores").into()
}

#[tokio::test]
async fn bad_environment_fails_at_init_naming_the_variable() {
    let stub = RuntimeStub::start().await;
    for (var, value) in [
        ("MEDKIT_STORES_TABLE", None),
        ("MEDKIT_EXTENSIONS", Some("no-colon-here")),
        ("MEDKIT_STATE_TTL_DAYS", Some("thirty")),
        ("MEDKIT_WS_ENDPOINT", Some("not a url")),
    ] {
        assert_init_fails_naming(&stub, &bootstrap(), var, value);
    }
}

#[tokio::test]
async fn a_malformed_event_is_an_error_and_the_next_one_is_served() {
    let stub = RuntimeStub::start().await;
    let malformed = [
        r#"{"this is": "not an API Gateway event"}"#,
        "not even JSON",
    ];
    // A valid request that needs no table: refused for its missing token.
    let event = unauthenticated_http_event("/v1/e/channel_state");
    let answer = assert_survives_malformed(&stub, &bootstrap(), &malformed, event).await;
    let body = answer.body_json();
    assert_eq!(body["statusCode"], 401, "{body}");
    let reason: serde_json::Value = serde_json::from_str(body["body"].as_str().unwrap()).unwrap();
    assert!(reason["reason"].is_string(), "{reason}");
    assert!(stub.init_error().is_none());
}
