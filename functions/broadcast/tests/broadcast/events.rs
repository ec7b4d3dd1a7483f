//! Every sample event in events/broadcast goes through the Lambda entry
//! (lambda_http's adapter around this function's router), and the fan-out
//! worker's stream event through the worker.

use medkit::realtime::job::MAX_EVENT_AGE_SECS;
use std::sync::Arc;

use medkit::auth::Role;
use medkit::clock::now_secs;
use medkit::delivery::fanout::FanoutNotifier;
use medkit::env::Env;
use medkit::gamelink::session::{Login, Session};
use medkit::ids::{ChannelId, ClientId, ConnectionId, ViewerId};
use medkit::realtime::subscription::Subscription;
use medkit::realtime::{Connection, new_connection_id, shard_of};
use medkit::store::ConnectionStore;
use medkit::store::dynamo::stream::StreamEvent;
use medkit::store::embedded::EmbeddedStore;
use medkit::testing::{
    RecordingPoster, SAMPLE_CLIENT_ID, invoke, sample_app_with_poster, sample_events,
};
use medkit_broadcast::worker;

/// The sample viewer (user 2002) on channel 1001, in extension-wide shard 0.
fn sample_viewer() -> Connection {
    let id = std::iter::repeat_with(new_connection_id)
        .find(|id| shard_of(id) == 0)
        .unwrap();
    Connection {
        id,
        client_id: ClientId::parse(SAMPLE_CLIENT_ID).unwrap(),
        channel_id: Some(ChannelId::parse("1001").unwrap()),
        opaque_user_id: Some(ViewerId::parse("U2002").unwrap()),
        user_id: None,
        role: Role::Viewer,
        pin_issued: false,
        connected_at: now_secs(),
        expires_at: now_secs() + 3600,
    }
}

#[tokio::test]
async fn sample_events_run_through_the_lambda_entry() {
    let store = EmbeddedStore::in_memory();
    let viewer = sample_viewer();
    store.add_connection(&viewer).await.unwrap();
    // A game of channel 1001 subscribed to its datastream.
    let game = logged_in_game(&store).await;
    let poster = Arc::new(RecordingPoster::default());
    let mut app = sample_app_with_poster(store.clone(), poster.clone());
    Arc::get_mut(&mut app).unwrap().notifier = Arc::new(FanoutNotifier {
        store,
        poster: poster.clone(),
        env: Env::Sandbox,
        relay: None,
    });
    let router = medkit_broadcast::router(app);
    let events = sample_events("broadcast");
    assert_eq!(
        events.len(),
        6,
        "one per endpoint, GET with a body, and datastream"
    );
    for (name, event) in events {
        let (status, body) = invoke(&router, &event).await;
        assert_eq!(status, 200, "{name}: {body}");
        let got: Vec<(ConnectionId, serde_json::Value)> = poster.take();
        assert_eq!(got.len(), 1, "{name}");
        if name.contains("datastream") {
            // The datastream's events reach the subscribed game.
            assert_eq!(got[0].0, game);
            assert_eq!(got[0].1["meta"]["target"], "datastream");
            assert_eq!(got[0].1["data"]["events"][0]["event"]["type"], "cheer");
        } else {
            // Each reaches the sample viewer: broadcast, whisper to U2002,
            // global, whisper_self (the viewer's own token), pusher.
            assert_eq!(got[0].0, viewer.id);
        }
    }
}

/// A GameLink session of channel 1001, subscribed to its datastream.
async fn logged_in_game(store: &EmbeddedStore) -> ConnectionId {
    let client = ClientId::parse(SAMPLE_CLIENT_ID).unwrap();
    let channel = ChannelId::parse("1001").unwrap();
    let login = Login {
        channel: channel.clone(),
        token_id: "tok".into(),
        game_id: None,
    };
    let session =
        Session::opened(new_connection_id(), client, now_secs()).logged_in(login, now_secs() + 600);
    store.put_session(&session).await.unwrap();
    let sub = Subscription::channel(&channel, medkit::gamelink::datastream::TOPIC);
    assert!(store.subscribe(&session, &sub).await.unwrap());
    session.id
}

#[tokio::test]
async fn the_fan_out_worker_delivers_a_stream_job() {
    let store = EmbeddedStore::in_memory();
    let viewer = sample_viewer();
    store.add_connection(&viewer).await.unwrap();
    let poster = Arc::new(RecordingPoster::default());
    let app = sample_app_with_poster(store, poster.clone());
    for (name, text) in sample_events("fanout") {
        let event: StreamEvent = serde_json::from_str(&text).expect(&name);
        let r = worker::handle(&app, event).await;
        assert!(r.batch_item_failures.is_empty(), "{name}");
        let got = poster.take();
        if name.contains("twitch") {
            // A relay job posts to no socket (relay.rs: to Helix).
            assert!(got.is_empty(), "{name}");
            continue;
        }
        assert_eq!(got.len(), 1, "{name}");
        assert_eq!(got[0].1["topic"], "global");
    }
    // A record that is not a job is skipped, not retried forever.
    let junk: StreamEvent = serde_json::from_str(
        r#"{"Records": [{"eventName": "REMOVE", "dynamodb": {"SequenceNumber": "1"}}]}"#,
    )
    .unwrap();
    assert!(
        worker::handle(&app, junk)
            .await
            .batch_item_failures
            .is_empty()
    );
    assert!(poster.take().is_empty());
}

/// Issue #19, finding 1 (late events): a job is delivered however old it is
/// on main. Now one sent more than a minute ago is dropped, not delivered
/// late; a recent one is delivered.
#[tokio::test]
async fn a_job_older_than_a_minute_is_dropped() {
    let store = EmbeddedStore::in_memory();
    let viewer = sample_viewer();
    store.add_connection(&viewer).await.unwrap();
    let poster = Arc::new(RecordingPoster::default());
    let app = sample_app_with_poster(store, poster.clone());
    let (_, text) = sample_events("fanout").into_iter().next().unwrap();
    let sent_at = |secs_ago: i64| {
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["Records"][0]["dynamodb"]["NewImage"]["at"] =
            serde_json::json!({"N": (now_secs() - secs_ago).to_string()});
        serde_json::from_value::<StreamEvent>(v).unwrap()
    };
    let r = worker::handle(&app, sent_at(MAX_EVENT_AGE_SECS + 5)).await;
    assert!(r.batch_item_failures.is_empty(), "dropped, not retried");
    assert!(poster.take().is_empty(), "a stale job reaches no one");
    let r = worker::handle(&app, sent_at(2)).await;
    assert!(r.batch_item_failures.is_empty());
    assert_eq!(poster.take().len(), 1, "a recent job is delivered");
}
