//! A crash between recording a purchase and telling the games (the store's
//! fault hook: recorded durably, then the process dies): the client is
//! told 503 with no internals, its retry answers with the record and
//! pushes nothing, and the channel's game still receives the purchase when
//! it subscribes, through the socket function's Lambda entry; after it
//! validates, a new subscription receives nothing. On both stores.

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use axum::http::{Method, StatusCode};
use medkit::auth::Role;
use medkit::clock::now_secs;
use medkit::env::Env;
use medkit::gamelink::session::{Login, Session};
use medkit::ids::{ChannelId, ClientId, ConnectionId};
use medkit::store::Faults;
use medkit::store::embedded::EmbeddedStore;
use medkit::testing::{
    self, CLIENT_ID, RecordingPoster, SECRET, app_with_poster, bearer, call, sign_json, token,
};
use medkit_socket::gamelink::GameStore;
use serde_json::{Value, json};

const CHANNEL: &str = "1001";

fn submission(tx: &str) -> String {
    let claims = json!({"topic": "bits_transaction_receipt", "exp": now_secs() + 60, "data": {
        "transactionId": tx, "userId": "555",
        "product": {"sku": "hat", "displayName": "Hat", "cost": {"amount": 100, "type": "bits"}}}});
    json!({"transactionId": tx, "displayName": "Viewer", "transactionReceipt": sign_json(&claims, "HS256", SECRET)})
        .to_string()
}

fn frame(id: u16, action: &str, target: &str, data: Value) -> ApiGatewayWebsocketProxyRequest {
    let body =
        json!({"action": action, "data": data, "params": {"request_id": id, "target": target}});
    serde_json::from_value(json!({
        "requestContext": {"routeKey": "$default", "connectionId": "game1=", "connectedAt": 0, "requestTimeEpoch": 0},
        "body": body.to_string(),
    }))
    .unwrap()
}

async fn a_crash_after_recording_loses_nothing<S: GameStore + Clone>(store: S, faults: &Faults) {
    let poster = Arc::new(RecordingPoster::default());
    let (app, _) = app_with_poster(store, Env::Production, poster.clone());
    let rest = medkit_purchases::router(app.clone());
    let viewer = bearer(&token(Role::Viewer, CHANNEL, Some("555")));
    faults.crash_purchases_after_record(1);
    let (s, v) = call(
        &rest,
        Method::POST,
        "/v1/e/bits/transactions",
        Some(&viewer),
        Some(&submission("tx-crash")),
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(
        !v["reason"].as_str().unwrap().contains("injected"),
        "no internals: {v}"
    );
    let (s, first) = call(
        &rest,
        Method::POST,
        "/v1/e/bits/transactions",
        Some(&viewer),
        Some(&submission("tx-crash")),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "the retry finds it recorded: {first}");

    // The channel's game connects and subscribes: it receives it.
    let mut session = Session::opened(
        ConnectionId::parse("game1=").unwrap(),
        ClientId::parse(CLIENT_ID).unwrap(),
        now_secs(),
    );
    session.login = Some(Login {
        channel: ChannelId::parse(CHANNEL).unwrap(),
        token_id: "t".into(),
        game_id: None,
    });
    session.expires_at = now_secs() + 3600;
    app.store.put_session(&session).await.unwrap();
    let r = medkit_socket::handle(
        &app,
        frame(1, "subscribe", "twitchPurchaseBits", json!({"sku": "*"})),
    )
    .await;
    assert_eq!(r.status_code, 200);
    let sent = poster.take();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].1["meta"]["target"], "twitchPurchaseBits");
    assert_eq!(sent[0].1["data"]["id"], "tx-crash");
    assert_eq!(sent[0].1["data"]["muxy_id"], first["muxy_id"]);
    // Validated, then subscribed again: nothing.
    let r = medkit_socket::handle(
        &app,
        frame(
            2,
            "validate",
            "transaction",
            json!({"transaction_id": "tx-crash"}),
        ),
    )
    .await;
    assert_eq!(r.status_code, 200);
    medkit_socket::handle(
        &app,
        frame(3, "subscribe", "twitchPurchaseBits", json!({"sku": "hat"})),
    )
    .await;
    assert!(poster.take().is_empty(), "validated: never again");
}

#[tokio::test]
async fn a_crash_after_recording_loses_nothing_on_the_embedded_store() {
    // The store's clones share its faults.
    let store = EmbeddedStore::in_memory();
    a_crash_after_recording_loses_nothing(store.clone(), store.faults()).await;
}

#[tokio::test]
async fn a_crash_after_recording_loses_nothing_on_dynamodb() {
    if let Some((store, _)) = testing::dynamo_store("purchase crash").await {
        a_crash_after_recording_loses_nothing(store.clone(), store.faults()).await;
    }
}
