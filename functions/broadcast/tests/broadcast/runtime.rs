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

/// The relay's configuration is checked at init: a malformed entry, or an
/// extension that is not configured, fails naming the variable.
#[tokio::test]
async fn a_bad_relay_configuration_fails_at_init_naming_it() {
    let stub = RuntimeStub::start().await;
    let bin = env!("CARGO_BIN_EXE_medkit-fanout");
    for value in ["sample-client", "sample-client=12a", "other-client=1"] {
        assert_init_fails_naming(&stub, bin.as_ref(), "MEDKIT_TWITCH_RELAY", Some(value));
    }
}

/// The Lambda path of the relay: the built `medkit-fanout` bootstrap under
/// a local Runtime API, its tables in DynamoDB Local (the channel's Twitch
/// budget is counted there), handed the sample relay job from
/// `events/fanout`, posts it to the Helix stand-in.
#[tokio::test]
async fn the_fan_out_bootstrap_relays_a_job_to_helix() {
    use medkit::testing::helix::HelixStandIn;
    use medkit::testing::runtime_stub::{Outcome, Running, medkit_env};
    // Says it did not run without DynamoDB Local (fails under
    // MEDKIT_REQUIRE_DYNAMODB=1).
    let Some((store, _)) = medkit::testing::dynamo_store("fan-out bootstrap relay").await else {
        return;
    };
    let endpoint = std::env::var(medkit::testing::ENDPOINT_VAR).unwrap();
    let tables = store.tables().clone();
    let secret = medkit::registry::decode_secret(medkit::testing::SAMPLE_SECRET_B64).unwrap();
    let helix = HelixStandIn::start(medkit::testing::SAMPLE_CLIENT_ID, &secret, "1001").await;
    let stub = RuntimeStub::start().await;
    let mut cmd = stub.command(env!("CARGO_BIN_EXE_medkit-fanout").as_ref());
    cmd.envs(medkit_env())
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("MEDKIT_CONNECTIONS_TABLE", &tables.connections)
        .env("MEDKIT_TWITCH_RELAY", "sample-client=1001")
        .env("MEDKIT_HELIX_URL", &helix.base)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let _function = Running(cmd.spawn().expect("spawn the bootstrap"));
    let (_, event) = medkit::testing::sample_events("fanout")
        .into_iter()
        .find(|(n, _)| n.contains("twitch"))
        .expect("a sample relay job");
    let id = stub.push(event);
    match stub.outcome(&id, std::time::Duration::from_secs(20)).await {
        Some(o @ Outcome::Response { .. }) => {
            assert_eq!(o.body_json()["batchItemFailures"], serde_json::json!([]));
        }
        other => panic!("expected an answer, got {other:?}"),
    }
    let got = helix.accepted();
    assert_eq!(got.len(), 1, "{:?}", helix.refusals());
    assert_eq!(
        (got[0].target.as_str(), got[0].channel.as_deref()),
        ("broadcast", Some("1001"))
    );
    assert_eq!(helix.answers(), [204]);
}
