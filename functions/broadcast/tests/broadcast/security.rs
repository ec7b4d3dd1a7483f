//! Security findings of issue #16 that the broadcast function answers, on
//! both stores: the embedded one always, DynamoDB when DynamoDB Local runs.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use medkit::auth::Role;
use medkit::clock::now_secs;
use medkit::env::Env;
use medkit::ids::{ChannelId, ClientId, ConnectionId, ViewerId};
use medkit::realtime::Connection;
use medkit::store::Store;
use medkit::store::embedded::EmbeddedStore;
use medkit::testing::{
    self, CLIENT_ID, RecordingPoster, app_with_poster, bearer, ok, refused, token,
};
use serde_json::json;

fn listener(id: &str, opaque: &str) -> Connection {
    Connection {
        id: ConnectionId::parse(id).unwrap(),
        client_id: ClientId::parse(CLIENT_ID).unwrap(),
        channel_id: Some(ChannelId::parse("10").unwrap()),
        opaque_user_id: Some(ViewerId::parse(opaque).unwrap()),
        user_id: None,
        role: Role::Viewer,
        pin_issued: false,
        connected_at: now_secs(),
        expires_at: now_secs() + 3600,
    }
}

/// Finding 2: `whisper_self` (any viewer, even anonymous) spent the
/// channel's 100 sends per 5 minutes, so 100 of them silenced the
/// broadcaster and the extension for the rest of the window. A viewer's own
/// whispers now spend that viewer's budget only.
async fn a_viewer_cannot_spend_the_channels_budget<S: Store>(store: S) {
    for c in [listener("A", "Avictim"), listener("M", "Amallory")] {
        store.add_connection(&c).await.unwrap();
    }
    let poster = Arc::new(RecordingPoster::default());
    let router = medkit_broadcast::router(app_with_poster(store, Env::Sandbox, poster.clone()).0);
    // Start at a window's beginning, so all the sends below share one.
    let into_window = now_secs() % 300;
    if into_window > 280 {
        tokio::time::sleep(std::time::Duration::from_secs((301 - into_window) as u64)).await;
    }
    let mallory = bearer(&testing::sign({
        let mut c = medkit::auth::claims_for(Role::Viewer, "10", None, 3600);
        c.opaque_user_id = Some("Amallory".into());
        c
    }));
    let whisper = json!({"event": "spam"}).to_string();
    for _ in 0..100 {
        ok(
            &router,
            Method::POST,
            "/v1/e/whisper_self",
            &mallory,
            Some(&whisper),
        )
        .await;
    }
    let reason = refused(
        &router,
        Method::POST,
        "/v1/e/whisper_self",
        &mallory,
        Some(&whisper),
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    assert!(reason.contains("of your own"), "{reason}");
    poster.take();
    // The channel's senders still have their whole budget.
    let broadcast = json!({"target": "broadcast", "event": "round"}).to_string();
    for auth in [
        bearer(&token(Role::Broadcaster, "10", Some("10"))),
        bearer(&token(Role::Admin, "10", None)),
    ] {
        ok(
            &router,
            Method::POST,
            "/v1/e/broadcast",
            &auth,
            Some(&broadcast),
        )
        .await;
        let got: Vec<String> = poster
            .take()
            .into_iter()
            .map(|(id, _)| id.to_string())
            .collect();
        assert_eq!(got.len(), 2, "both listeners receive: {got:?}");
    }
}

#[tokio::test]
async fn a_viewer_cannot_spend_the_channels_budget_embedded() {
    a_viewer_cannot_spend_the_channels_budget(EmbeddedStore::in_memory()).await;
}

#[tokio::test]
async fn a_viewer_cannot_spend_the_channels_budget_dynamodb() {
    if let Some((store, _)) =
        testing::dynamo_store("a_viewer_cannot_spend_the_channels_budget_dynamodb").await
    {
        a_viewer_cannot_spend_the_channels_budget(store).await;
    }
}
