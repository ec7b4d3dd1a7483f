//! The built `medkit-socket` bootstrap under a local Runtime API.

use medkit::testing::runtime_stub::{
    RuntimeStub, assert_init_fails_naming, assert_survives_malformed,
};
use medkit::testing::sample_events;

fn bootstrap() -> std::path::PathBuf {
    env!("CARGO_BIN_EXE_medkit-socket").into()
}

#[tokio::test]
async fn bad_environment_fails_at_init_naming_the_variable() {
    let stub = RuntimeStub::start().await;
    assert_init_fails_naming(&stub, &bootstrap(), "MEDKIT_CONNECTIONS_TABLE", None);
}

#[tokio::test]
async fn a_malformed_event_is_an_error_and_the_next_one_is_served() {
    let stub = RuntimeStub::start().await;
    let ping = sample_events("socket")
        .into_iter()
        .find(|(name, _)| name.contains("default-ping"))
        .expect("a $default sample event")
        .1;
    let malformed = [r#"{"requestContext": 42}"#];
    let answer = assert_survives_malformed(&stub, &bootstrap(), &malformed, ping).await;
    assert_eq!(answer.body_json()["statusCode"], 200);
}
