//! Security findings of issue #16 that the auth function answers, on both
//! stores: the embedded one always, DynamoDB when DynamoDB Local runs.

use std::sync::Arc;

use axum::Router;
use axum::http::{Method, StatusCode};
use medkit::auth::Role;
use medkit::clock::now_secs;
use medkit::env::Env;
use medkit::ids::{ChannelId, ClientId, ConnectionId, ViewerId};
use medkit::realtime::Connection;
use medkit::store::Store;
use medkit::store::embedded::EmbeddedStore;
use medkit::testing::{self, CLIENT_ID, RecordingPoster, bearer, ok, refused, token};
use serde_json::{Value, json};

fn broadcaster(channel: &str) -> String {
    bearer(&token(Role::Broadcaster, channel, Some(channel)))
}

/// A new PIN and its (inert) token.
async fn new_pin(r: &Router) -> (String, String) {
    let body = json!({"identifier": CLIENT_ID}).to_string();
    let v = medkit::testing::call(r, Method::POST, "/v1/e/pin", None, Some(&body))
        .await
        .1;
    (
        v["pin"].as_str().unwrap().to_string(),
        v["token"].as_str().unwrap().to_string(),
    )
}

/// A well-formed PIN that is not `pin`.
fn wrong(pin: &str, i: usize) -> String {
    let alphabet: Vec<char> = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789".chars().collect();
    let guess: String = (0..6)
        .map(|k| alphabet[(i * 7 + k * 3 + 11) % alphabet.len()])
        .collect();
    if guess == pin { "ZZZZZZ".into() } else { guess }
}

async fn validate(r: &Router, auth: &str, pin: &str) -> (StatusCode, Value) {
    let body = json!({"pin": pin}).to_string();
    medkit::testing::call(
        r,
        Method::POST,
        "/v1/e/validate_pin",
        Some(auth),
        Some(&body),
    )
    .await
}

/// Finding 7: 4,000 wrong `validate_pin` guesses were all 404 and the right
/// PIN still worked after. Every attempt now spends from the channel's
/// budget of wrong PINs (5 per 5 minutes) and the extension's (100 per 5
/// minutes), checked before the PIN is looked up: once either is spent,
/// even the right PIN is refused with 429, so guessing gains nothing.
async fn pin_guessing_is_limited<S: Store>(store: S) {
    let r = medkit_auth::router(testing::app(store, Env::Sandbox).0);
    // Start at a window's beginning, so every attempt below shares one.
    let into_window = now_secs() % 300;
    if into_window > 270 {
        tokio::time::sleep(std::time::Duration::from_secs((301 - into_window) as u64)).await;
    }
    let (pin, _) = new_pin(&r).await;
    let guesser = broadcaster("1");
    for i in 0..5 {
        let (s, v) = validate(&r, &guesser, &wrong(&pin, i)).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "guess {i}: {v}");
    }
    let (s, v) = validate(&r, &guesser, &pin).await;
    assert_eq!(
        s,
        StatusCode::TOO_MANY_REQUESTS,
        "the right PIN after 5 wrong ones: {v}"
    );
    assert!(
        v["reason"].as_str().unwrap().contains("this channel"),
        "{v}"
    );
    // The PIN was not consumed: its broadcaster still validates it.
    let (s, v) = validate(&r, &broadcaster("2"), &pin).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // Many guessing channels together hit the extension's budget (95 more
    // wrong ones, then it is spent at 100).
    for ch in 0..19 {
        for i in 0..5 {
            let (s, _) = validate(&r, &broadcaster(&format!("g{ch}")), &wrong(&pin, i)).await;
            assert_eq!(s, StatusCode::NOT_FOUND);
        }
    }
    let (pin2, _) = new_pin(&r).await;
    let (s, v) = validate(&r, &broadcaster("fresh"), &pin2).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert!(
        v["reason"].as_str().unwrap().contains("this extension"),
        "{v}"
    );
}

#[tokio::test]
async fn pin_guessing_is_limited_embedded() {
    pin_guessing_is_limited(EmbeddedStore::in_memory()).await;
}

#[tokio::test]
async fn pin_guessing_is_limited_dynamodb() {
    if let Some((store, _)) = testing::dynamo_store("pin_guessing_is_limited_dynamodb").await {
        pin_guessing_is_limited(store).await;
    }
}

fn socket(id: &str, channel: &str, pin_issued: bool) -> Connection {
    Connection {
        id: ConnectionId::parse(id).unwrap(),
        client_id: ClientId::parse(CLIENT_ID).unwrap(),
        channel_id: Some(ChannelId::parse(channel).unwrap()),
        opaque_user_id: Some(ViewerId::parse(format!("P{id}")).unwrap()),
        user_id: None,
        role: Role::Broadcaster,
        pin_issued,
        connected_at: now_secs(),
        expires_at: now_secs() + 3600,
    }
}

/// Finding 5 (PIN half): `DELETE pin` revoked the channel's PIN tokens but
/// left their open sockets receiving the channel's broadcasts. Their
/// connections are now forgotten and closed; other sockets stay.
async fn revoking_pins_closes_their_sockets<S: Store>(store: S) {
    for c in [
        socket("game1", "1", true),
        socket("viewer1", "1", false),
        socket("game2", "2", true),
    ] {
        store.add_connection(&c).await.unwrap();
    }
    let poster = Arc::new(RecordingPoster::default());
    let (app, _) = testing::app_with_poster(store.clone(), Env::Sandbox, poster.clone());
    let r = medkit_auth::router(app);
    ok(&r, Method::DELETE, "/v1/e/pin", &broadcaster("1"), None).await;
    let closed: Vec<String> = poster
        .closed
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(closed, ["game1"]);
    let client = ClientId::parse(CLIENT_ID).unwrap();
    let left = store
        .channel_connections(&client, &ChannelId::parse("1").unwrap())
        .await
        .unwrap();
    assert_eq!(left, [ConnectionId::parse("viewer1").unwrap()]);
    let other = store
        .pin_connections(&client, &ChannelId::parse("2").unwrap())
        .await
        .unwrap();
    assert_eq!(
        other,
        [ConnectionId::parse("game2").unwrap()],
        "another channel's stay"
    );
    // A viewer may not revoke.
    refused(
        &r,
        Method::DELETE,
        "/v1/e/pin",
        &bearer(&token(Role::Viewer, "1", Some("7"))),
        None,
        StatusCode::FORBIDDEN,
    )
    .await;
}

#[tokio::test]
async fn revoking_pins_closes_their_sockets_embedded() {
    revoking_pins_closes_their_sockets(EmbeddedStore::in_memory()).await;
}

#[tokio::test]
async fn revoking_pins_closes_their_sockets_dynamodb() {
    if let Some((store, _)) =
        testing::dynamo_store("revoking_pins_closes_their_sockets_dynamodb").await
    {
        revoking_pins_closes_their_sockets(store).await;
    }
}
