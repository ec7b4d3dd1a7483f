//! The broadcast endpoints over the embedded store and a recording poster:
//! who receives what, and every refusal delivering nothing.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use medkit::auth::Role;
use medkit::clock::now_secs;
use medkit::delivery::Notifier;
use medkit::delivery::fanout::FanoutNotifier;
use medkit::env::Env;
use medkit::ids::{ChannelId, ClientId, ConnectionId, UserId, ViewerId};
use medkit::realtime::Connection;
use medkit::realtime::envelope::decode_message;
use medkit::realtime::event::{Audience, Event};
use medkit::store::ConnectionStore;
use medkit::store::embedded::EmbeddedStore;
use medkit::testing::{CLIENT_ID, RecordingPoster, app_with_poster, bearer, ok, refused, token};
use serde_json::{Value, json};

struct Fixture {
    router: axum::Router,
    poster: Arc<RecordingPoster>,
    store: EmbeddedStore,
}

fn conn(id: &str, channel: &str, opaque: &str, user: Option<&str>) -> Connection {
    Connection {
        id: ConnectionId::parse(id).unwrap(),
        client_id: ClientId::parse(CLIENT_ID).unwrap(),
        channel_id: Some(ChannelId::parse(channel).unwrap()),
        opaque_user_id: Some(ViewerId::parse(opaque).unwrap()),
        user_id: user.map(|u| UserId::parse(u).unwrap()),
        role: Role::Viewer,
        pin_issued: false,
        connected_at: now_secs(),
        expires_at: now_secs() + 7200,
    }
}

/// Viewers A and B on channel 10, C on channel 20, and A's second tab on 20.
async fn fixture() -> Fixture {
    let store = EmbeddedStore::in_memory();
    for c in [
        conn("A", "10", "U1", Some("1")),
        conn("B", "10", "UB", None),
        conn("C", "20", "UC", None),
        conn("A2", "20", "U1", Some("1")),
    ] {
        store.add_connection(&c).await.unwrap();
    }
    let poster = Arc::new(RecordingPoster::default());
    let (app, _) = app_with_poster(store.clone(), Env::Sandbox, poster.clone());
    Fixture {
        router: medkit_broadcast::router(app),
        poster,
        store,
    }
}

/// Who got a frame, sorted, with the topic and decoded envelope of each.
fn received(poster: &RecordingPoster) -> Vec<(String, String, Value)> {
    let mut got: Vec<_> = poster
        .take()
        .into_iter()
        .map(|(id, frame)| {
            let env = decode_message(frame["message"].as_str().unwrap()).unwrap();
            (
                id.to_string(),
                frame["topic"].as_str().unwrap().to_string(),
                env,
            )
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    got
}

fn who(got: &[(String, String, Value)]) -> Vec<&str> {
    got.iter().map(|g| g.0.as_str()).collect()
}

/// POSTs `body` to `path` as `auth` and expects 200.
async fn post(f: &Fixture, path: &str, auth: &str, body: &str) {
    ok(&f.router, Method::POST, path, auth, Some(body)).await;
}

fn caster() -> String {
    bearer(&token(Role::Broadcaster, "10", Some("10")))
}

#[tokio::test]
async fn a_channel_broadcast_reaches_that_channel_only() {
    let f = fixture().await;
    let body = json!({"target": "broadcast", "event": "score", "data": {"n": 1}}).to_string();
    for method in [Method::POST, Method::GET] {
        let v = ok(&f.router, method, "/v1/e/broadcast", &caster(), Some(&body)).await;
        assert_eq!(v, json!({}));
        let got = received(&f.poster);
        assert_eq!(who(&got), ["A", "B"]);
        for (_, topic, env) in &got {
            assert_eq!(topic, "broadcast");
            assert_eq!(
                env,
                &json!({"event": "sandbox:testclient:score", "data": {"n": 1}})
            );
        }
    }
    // Admin and backend name the channel (`user_id` is MEDKit's name for it).
    let admin = bearer(&token(Role::Admin, "10", None));
    let body = json!({"target": "broadcast", "event": "e", "user_id": "20"}).to_string();
    post(&f, "/v1/e/broadcast", &admin, &body).await;
    assert_eq!(who(&received(&f.poster)), ["A2", "C"]);
}

#[tokio::test]
async fn whispers_reach_one_viewer_by_opaque_or_twitch_id() {
    let f = fixture().await;
    let body = json!({"target": "whisper-U1", "event": "psst", "data": 1}).to_string();
    post(&f, "/v1/e/broadcast", &caster(), &body).await;
    let got = received(&f.poster);
    assert_eq!(who(&got), ["A"], "only A's tab on channel 10");
    assert_eq!(got[0].1, "whisper-U1");
    // Extension-wide, by Twitch user id: both of A's tabs.
    let backend = bearer(&token(Role::Backend, "10", None));
    let body = json!({"target": "whisper-1", "event": "psst"}).to_string();
    post(&f, "/v1/e/extension_broadcast", &backend, &body).await;
    let got = received(&f.poster);
    assert_eq!(who(&got), ["A", "A2"]);
    assert_eq!(got[0].2["data"], json!({}), "data defaults to {{}}");
}

#[tokio::test]
async fn extension_broadcasts_reach_every_channel_on_topic_global() {
    let f = fixture().await;
    let admin = bearer(&token(Role::Admin, "10", None));
    let body = json!({"target": "broadcast", "event": "season", "data": 4}).to_string();
    post(&f, "/v1/e/extension_broadcast", &admin, &body).await;
    let got = received(&f.poster);
    assert_eq!(who(&got), ["A", "A2", "B", "C"]);
    assert!(got.iter().all(|g| g.1 == "global"));
}

#[tokio::test]
async fn whisper_self_reaches_the_callers_tabs_on_the_callers_channel() {
    let f = fixture().await;
    let me = bearer(&token(Role::Viewer, "10", Some("1")));
    let body = json!({"event": "sync", "data": {"tab": 2}}).to_string();
    post(&f, "/v1/e/whisper_self", &me, &body).await;
    let got = received(&f.poster);
    assert_eq!(who(&got), ["A"]);
    assert_eq!(got[0].1, "whisper-U1");
    let body = json!({"event": "sync", "target": "whisper-UB"}).to_string();
    refused(
        &f.router,
        Method::POST,
        "/v1/e/whisper_self",
        &me,
        Some(&body),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(received(&f.poster).is_empty());
}

#[tokio::test]
async fn pusher_broadcast_takes_the_scoped_event_the_official_client_sends() {
    let f = fixture().await;
    let body = json!({"target": "broadcast", "event": "sandbox:testclient:score", "user_id": "10", "data": 2}).to_string();
    post(&f, "/v1/e/pusher_broadcast", &caster(), &body).await;
    let got = received(&f.poster);
    assert_eq!(
        got[0].2["event"], "sandbox:testclient:score",
        "scoped once, not twice"
    );
}

#[tokio::test]
async fn refused_sends_deliver_nothing() {
    let f = fixture().await;
    let viewer = bearer(&token(Role::Viewer, "10", Some("1")));
    let good = json!({"target": "broadcast", "event": "e"});
    let huge = json!({"target": "broadcast", "event": "e", "data": medkit::random::token_id(9000)});
    let cases: Vec<(&str, String, Value, StatusCode)> = vec![
        (
            "broadcast",
            viewer.clone(),
            good.clone(),
            StatusCode::FORBIDDEN,
        ),
        (
            "pusher_broadcast",
            viewer.clone(),
            good.clone(),
            StatusCode::FORBIDDEN,
        ),
        (
            "extension_broadcast",
            caster(),
            good.clone(),
            StatusCode::FORBIDDEN,
        ),
        (
            "extension_broadcast",
            viewer.clone(),
            good.clone(),
            StatusCode::FORBIDDEN,
        ),
        (
            "broadcast",
            caster(),
            json!({"target": "broadcast", "event": "e", "channel_id": "20"}),
            StatusCode::FORBIDDEN,
        ),
        (
            "broadcast",
            caster(),
            json!({"target": "broadcast"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "broadcast",
            caster(),
            json!({"event": "e"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "broadcast",
            caster(),
            json!({"target": "all", "event": "e"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "broadcast",
            caster(),
            json!({"target": "whisper-", "event": "e"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "broadcast",
            caster(),
            json!({"target": 1, "event": "e"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "broadcast",
            caster(),
            json!({"target": "broadcast", "event": ""}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "broadcast",
            caster(),
            json!(["not", "an", "object"]),
            StatusCode::BAD_REQUEST,
        ),
        ("broadcast", caster(), huge, StatusCode::PAYLOAD_TOO_LARGE),
    ];
    for (path, auth, body, status) in cases {
        let uri = format!("/v1/e/{path}");
        refused(
            &f.router,
            Method::POST,
            &uri,
            &auth,
            Some(&body.to_string()),
            status,
        )
        .await;
    }
    assert!(received(&f.poster).is_empty());
}

#[tokio::test]
async fn the_101st_send_in_five_minutes_is_refused() {
    let f = fixture().await;
    // Refused sends above do not count; start at a window's beginning so the
    // 100 sends below cannot straddle two windows.
    let into_window = now_secs() % 300;
    if into_window > 290 {
        tokio::time::sleep(std::time::Duration::from_secs((301 - into_window) as u64)).await;
    }
    let body = json!({"target": "broadcast", "event": "n"}).to_string();
    for _ in 0..100 {
        post(&f, "/v1/e/broadcast", &caster(), &body).await;
    }
    assert_eq!(received(&f.poster).len(), 200);
    let reason = refused(
        &f.router,
        Method::POST,
        "/v1/e/broadcast",
        &caster(),
        Some(&body),
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    assert!(reason.contains("100"), "{reason}");
    assert!(received(&f.poster).is_empty());
    // Channel 20 has its own budget.
    let other = bearer(&token(Role::Broadcaster, "20", Some("20")));
    post(&f, "/v1/e/broadcast", &other, &body).await;
}

#[tokio::test]
async fn a_connection_gone_mid_fan_out_is_removed_and_the_others_receive() {
    let f = fixture().await;
    f.poster
        .gone
        .lock()
        .unwrap()
        .insert(ConnectionId::parse("B").unwrap());
    let body = json!({"target": "broadcast", "event": "e"}).to_string();
    post(&f, "/v1/e/broadcast", &caster(), &body).await;
    assert_eq!(who(&received(&f.poster)), ["A"]);
    let left = f
        .store
        .channel_connections(
            &ClientId::parse(CLIENT_ID).unwrap(),
            &ChannelId::parse("10").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(left, vec![ConnectionId::parse("A").unwrap()]);
}

#[tokio::test]
async fn notifications_reach_the_channel_or_everyone() {
    let f = fixture().await;
    let notifier = FanoutNotifier {
        store: f.store.clone(),
        poster: f.poster.clone(),
        env: Env::Production,
        relay: None,
    };
    let client = ClientId::parse(CLIENT_ID).unwrap();
    notifier
        .notify(Event {
            client_id: client.clone(),
            audience: Audience::Channel(ChannelId::parse("20").unwrap()),
            name: "vote_update:poll".into(),
            data: json!({"id": "poll"}),
            games: None,
        })
        .await;
    let got = received(&f.poster);
    assert_eq!(who(&got), ["A2", "C"]);
    assert_eq!(got[0].2["event"], "production:testclient:vote_update:poll");
    notifier
        .notify(Event {
            client_id: client,
            audience: Audience::Extension,
            name: "json_store_update:globalx".into(),
            data: json!(1),
            games: None,
        })
        .await;
    let got = received(&f.poster);
    assert_eq!(got.len(), 4);
    assert!(got.iter().all(|g| g.1 == "global"));
}
