//! `$connect`, `$disconnect` and `$default`, through the functions the
//! Lambda entry and the dev server share, and through the sample events.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use aws_lambda_events::encodings::Body;
use medkit::app::SharedApp;
use medkit::auth::{Role, claims_for};
use medkit::env::Env;
use medkit::ids::{ChannelId, ClientId, ConnectionId};
use medkit::realtime::EXTENSION_SHARDS;
use medkit::store::embedded::EmbeddedStore;
use medkit::store::{AuthStore, ConnectionStore};
use medkit::testing::{CLIENT_ID, SAMPLE_CLIENT_ID, app, sample_app, sample_events, sign, token};
use serde_json::{Value, json};

fn id(s: &str) -> ConnectionId {
    ConnectionId::parse(s).unwrap()
}

/// Every connection the store knows for the client, over all shards.
async fn stored(app: &SharedApp<EmbeddedStore>, client: &str) -> usize {
    let mut n = 0;
    for shard in 0..EXTENSION_SHARDS {
        n += app
            .store
            .shard_connections(&ClientId::parse(client).unwrap(), shard)
            .await
            .unwrap()
            .len();
    }
    n
}

#[tokio::test]
async fn connect_refuses_bad_tokens_and_stores_nothing() {
    let (app, _) = app(EmbeddedStore::in_memory(), Env::Sandbox);
    let good = token(Role::Viewer, "10", Some("5"));
    let expired = sign(claims_for(Role::Viewer, "10", None, -3600));
    let forged = format!("{}A", &good[..good.len() - 1]);
    let none_alg = {
        // {"alg":"none"} header on good claims, no signature.
        let claims = good.split('.').nth(1).unwrap();
        format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{claims}.")
    };
    let cases: Vec<(Option<&str>, Option<&str>, u16)> = vec![
        (None, Some(&good), 401),
        (Some(CLIENT_ID), None, 401),
        (Some(CLIENT_ID), Some(""), 401),
        (Some(CLIENT_ID), Some(&expired), 401),
        (Some(CLIENT_ID), Some(&forged), 401),
        (Some(CLIENT_ID), Some(&none_alg), 401),
        (Some("unknown-client"), Some(&good), 401),
        (Some(CLIENT_ID), Some("not.a.jwt"), 401),
    ];
    for (i, (client, tok, status)) in cases.into_iter().enumerate() {
        let e = medkit_socket::connect(&app, id(&format!("c{i}")), client, tok)
            .await
            .unwrap_err();
        assert_eq!(e.status().as_u16(), status, "case {i}: {e}");
        assert!(!e.to_string().is_empty());
    }
    assert_eq!(stored(&app, CLIENT_ID).await, 0, "nothing stored");

    let conn = medkit_socket::connect(&app, id("ok1"), Some(CLIENT_ID), Some(&good))
        .await
        .unwrap();
    assert_eq!(conn.channel_id, Some(ChannelId::parse("10").unwrap()));
    assert_eq!(conn.user_id.as_ref().map(|u| u.as_str()), Some("5"));
    // Its token's `exp` (an hour away), not API Gateway's 2 hours (#16).
    assert!((3590..=3600).contains(&(conn.expires_at - conn.connected_at)));
    let on_channel = app
        .store
        .channel_connections(&conn.client_id, &ChannelId::parse("10").unwrap())
        .await
        .unwrap();
    assert_eq!(on_channel, vec![id("ok1")]);
    medkit_socket::disconnect(&app, &id("ok1")).await.unwrap();
    medkit_socket::disconnect(&app, &id("ok1")).await.unwrap();
    assert_eq!(stored(&app, CLIENT_ID).await, 0);
}

#[test]
fn default_route_answers_pings_and_explains_everything_else() {
    for ping in [r#"{"type":"ping"}"#, "ping", " ping\n"] {
        let r: Value = serde_json::from_str(&medkit_socket::reply(ping)).unwrap();
        assert_eq!(r, json!({"type": "pong"}));
    }
    for other in ["", "hello", r#"{"type":"send"}"#, "[1]"] {
        let r: Value = serde_json::from_str(&medkit_socket::reply(other)).unwrap();
        assert_eq!(r["type"], "error", "{other:?}");
        assert!(r["reason"].as_str().unwrap().contains("/v1/e/broadcast"));
    }
}

fn body_json(r: &aws_lambda_events::apigw::ApiGatewayProxyResponse) -> Value {
    match &r.body {
        Some(Body::Text(t)) => serde_json::from_str(t).unwrap(),
        None => Value::Null,
        other => panic!("unexpected body {other:?}"),
    }
}

#[tokio::test]
async fn sample_events_run_through_the_lambda_entry() {
    let app = sample_app(EmbeddedStore::in_memory());
    let events = sample_events("socket");
    assert_eq!(
        events.len(),
        15,
        "a viewer: $connect, two $default, $disconnect; a game: $connect, three frames, \
         $disconnect; a game server: $connect, four frames, $disconnect"
    );
    // The PIN the GameLink sample logs in with, as `POST gamelink/token` makes one.
    let client = ClientId::parse(SAMPLE_CLIENT_ID).unwrap();
    let channel = ChannelId::parse("1001").unwrap();
    assert!(
        app.store
            .create_game_pin(&client, "SMPL23", &channel, "sample-token", 300)
            .await
            .unwrap()
    );
    let mut answers = Vec::new();
    for (name, text) in &events {
        let event: ApiGatewayWebsocketProxyRequest = serde_json::from_str(text).expect(name);
        let r = medkit_socket::handle(&app, event).await;
        assert_eq!(r.status_code, 200, "{name}: {:?}", r.body);
        answers.push(body_json(&r));
        if name.starts_with("01") {
            assert_eq!(stored(&app, SAMPLE_CLIENT_ID).await, 1, "connected");
        }
    }
    assert_eq!(answers[1], json!({"type": "pong"}));
    assert_eq!(answers[2]["type"], "error");
    assert_eq!(answers[5]["data"]["twitch_id"], "1001", "{}", answers[5]);
    assert_eq!(
        answers[6]["data"],
        json!({"ok": true, "state": {"level": 2}})
    );
    assert_eq!(answers[7]["data"], json!({"ok": true}));
    assert_eq!(answers[7]["meta"]["request_id"], 3);
    // The game server's match, and its poll in both channels.
    assert!(answers[10].get("errors").is_none(), "{}", answers[10]);
    assert_eq!(answers[12]["data"]["channels"], json!(["1001", "1002"]));
    assert_eq!(
        answers[13]["data"]["overall"]["status"], "active",
        "{}",
        answers[13]
    );
    assert_eq!(
        answers[13]["data"]["results"]["1002"]["results"],
        json!([0, 0])
    );
    assert_eq!(stored(&app, SAMPLE_CLIENT_ID).await, 0, "disconnected");
    let game = ConnectionId::parse("sample-game-1=").unwrap();
    assert!(
        app.store.session(&game).await.unwrap().is_none(),
        "the game's session is gone"
    );
}

#[tokio::test]
async fn malformed_events_get_a_clear_error_not_a_crash() {
    let app = sample_app(EmbeddedStore::in_memory());
    // A $connect without a connection id.
    let no_id: ApiGatewayWebsocketProxyRequest = serde_json::from_value(json!({"requestContext": {
        "routeKey": "$connect", "connectedAt": 0, "requestTimeEpoch": 0
    }}))
    .unwrap();
    let r = medkit_socket::handle(&app, no_id).await;
    assert_eq!(r.status_code, 400);
    assert!(body_json(&r)["reason"].is_string());
    let no_token: ApiGatewayWebsocketProxyRequest = serde_json::from_value(json!({
        "requestContext": {
            "routeKey": "$connect", "connectionId": "x1=", "connectedAt": 0, "requestTimeEpoch": 0
        },
        "queryStringParameters": {"client_id": SAMPLE_CLIENT_ID}
    }))
    .unwrap();
    // Without a token it is a game's connection (GameLink authenticates
    // in-band): accepted, but no viewer's connection.
    let r = medkit_socket::handle(&app, no_token).await;
    assert_eq!(r.status_code, 200);
    assert_eq!(stored(&app, SAMPLE_CLIENT_ID).await, 0);
    // An empty token is still a viewer's connect, and refused.
    let empty_token: ApiGatewayWebsocketProxyRequest = serde_json::from_value(json!({
        "requestContext": {
            "routeKey": "$connect", "connectionId": "x2=", "connectedAt": 0, "requestTimeEpoch": 0
        },
        "queryStringParameters": {"client_id": SAMPLE_CLIENT_ID, "token": ""}
    }))
    .unwrap();
    let r = medkit_socket::handle(&app, empty_token).await;
    assert_eq!(r.status_code, 401);
    assert_eq!(body_json(&r)["reason"], "query parameter token is required");
    assert_eq!(stored(&app, SAMPLE_CLIENT_ID).await, 0);
}
