//! The built `medkit-purchases` bootstrap under a local Runtime API.

use medkit::testing::runtime_stub::{
    RuntimeStub, assert_init_fails_naming, assert_survives_malformed, unauthenticated_http_event,
};

fn bootstrap() -> std::path::PathBuf {
    env!("CARGO_BIN_EXE_medkit-purchases").into()
}

#[tokio::test]
async fn a_missing_table_fails_at_init_naming_it() {
    let stub = RuntimeStub::start().await;
    assert_init_fails_naming(&stub, &bootstrap(), "MEDKIT_PURCHASES_TABLE", None);
}

#[tokio::test]
async fn a_malformed_event_is_an_error_and_the_next_one_is_served() {
    let stub = RuntimeStub::start().await;
    let event = unauthenticated_http_event("/v1/e/bits/transactions");
    let answer = assert_survives_malformed(&stub, &bootstrap(), &["[1, 2, 3]"], event).await;
    assert_eq!(answer.body_json()["statusCode"], 401);
}
