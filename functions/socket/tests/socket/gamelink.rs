//! GameLink through the socket function's Lambda entry (`handle`, one
//! API Gateway event per frame, the session read from the store each
//! time), on the embedded store and on DynamoDB Local, with the DynamoDB
//! round trips of each verb counted.

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use medkit::app::SharedApp;
use medkit::clock::now_secs;
use medkit::env::Env;
use medkit::gamelink::session::{LOGIN_WINDOW_SECS, Session};
use medkit::ids::{ChannelId, ClientId, ConnectionId};
use medkit::store::ConnectionStore;
use medkit::store::embedded::EmbeddedStore;
use medkit::testing::{self, CLIENT_ID, RecordingPoster, RoundTripCounter, app_with_poster};
use medkit_socket::gamelink::GameStore;
use serde_json::{Value, json};

fn event(
    route: &str,
    conn: &str,
    query: Option<Value>,
    body: Option<&str>,
) -> ApiGatewayWebsocketProxyRequest {
    let mut e = json!({
        "requestContext": {
            "routeKey": route, "connectionId": conn, "connectedAt": 0, "requestTimeEpoch": 0
        }
    });
    if let Some(q) = query {
        e["queryStringParameters"] = q;
    }
    if let Some(b) = body {
        e["body"] = json!(b);
    }
    serde_json::from_value(e).unwrap()
}

fn body_of(r: &ApiGatewayProxyResponse) -> Value {
    match &r.body {
        Some(Body::Text(t)) => serde_json::from_str(t).unwrap(),
        None => Value::Null,
        other => panic!("unexpected body {other:?}"),
    }
}

fn frame(action: &str, id: u16, target: &str, data: Value) -> String {
    let mut params = json!({"request_id": id});
    if !target.is_empty() {
        params["target"] = json!(target);
    }
    json!({"action": action, "data": data, "params": params}).to_string()
}

/// One frame through `$default`: its reply.
async fn say<S: GameStore>(app: &SharedApp<S>, conn: &str, f: String) -> Value {
    let r = medkit_socket::handle(app, event("$default", conn, None, Some(&f))).await;
    assert_eq!(r.status_code, 200);
    body_of(&r)
}

const CHANNEL: &str = "10";

/// The verbs a game runs, each through the Lambda entry; `rt` (on
/// DynamoDB) counts each one's round trips.
async fn session_through_the_lambda_entry<S: GameStore>(
    app: &SharedApp<S>,
    poster: &RecordingPoster,
    rt: Option<&RoundTripCounter>,
) {
    let client = ClientId::parse(CLIENT_ID).unwrap();
    let channel = ChannelId::parse(CHANNEL).unwrap();
    let conn = "game1=";
    let mut trips = Vec::new();
    let mut count = |what: &str, rt: Option<&RoundTripCounter>| {
        if let Some(rt) = rt {
            trips.push((what.to_string(), rt.get()));
            rt.reset();
        }
    };
    // Bad handshakes: no client id, an unknown one.
    for q in [json!({}), json!({"client_id": "nobody"})] {
        let r = medkit_socket::handle(app, event("$connect", conn, Some(q), None)).await;
        assert_eq!(r.status_code, 401);
    }
    if let Some(rt) = rt {
        rt.reset();
    }
    let r = medkit_socket::handle(
        app,
        event(
            "$connect",
            conn,
            Some(json!({"client_id": CLIENT_ID})),
            None,
        ),
    )
    .await;
    assert_eq!(r.status_code, 200, "{:?}", r.body);
    count("$connect", rt);
    // No viewer connection: a game is not on the channel's broadcast list.
    assert!(
        app.store
            .channel_connections(&client, &channel)
            .await
            .unwrap()
            .is_empty()
    );
    if let Some(rt) = rt {
        rt.reset();
    }
    let r = say(
        app,
        conn,
        frame("get", 1, "state", json!({"state_id": "channel"})),
    )
    .await;
    assert_eq!(r["errors"][0]["number"], 401, "{r}");
    count("a verb before authenticate", rt);
    assert!(
        app.store
            .create_game_pin(&client, "ABC234", &channel, "tok-1", 300)
            .await
            .unwrap()
    );
    if let Some(rt) = rt {
        rt.reset();
    }
    let login = say(
        app,
        conn,
        frame(
            "authenticate",
            2,
            "",
            json!({"client_id": CLIENT_ID, "pin": "abc234"}),
        ),
    )
    .await;
    assert_eq!(login["meta"]["request_id"], 2);
    assert_eq!(login["data"]["twitch_id"], CHANNEL, "{login}");
    count("authenticate (PIN)", rt);
    let set = say(
        app,
        conn,
        frame(
            "set",
            3,
            "state",
            json!({"state_id": "channel", "state": {"hp": 3}}),
        ),
    )
    .await;
    assert_eq!(
        set["data"],
        json!({"ok": true, "state": {"hp": 3}}),
        "{set}"
    );
    count("set state", rt);
    let got = say(
        app,
        conn,
        frame("get", 4, "state", json!({"state_id": "channel"})),
    )
    .await;
    assert_eq!(got["data"]["state"]["hp"], 3);
    count("get state", rt);
    let patched = say(
        app,
        conn,
        frame(
            "patch",
            5,
            "state",
            json!({"state_id": "channel", "state": [{"op": "add", "path": "/mp", "value": 1}]}),
        ),
    )
    .await;
    assert_eq!(patched["data"]["state"], json!({"hp": 3, "mp": 1}));
    count("patch state", rt);
    let sub = say(
        app,
        conn,
        frame("subscribe", 6, "state", json!({"topic_id": "channel"})),
    )
    .await;
    assert_eq!(sub["data"], json!({"ok": true}), "{sub}");
    count("subscribe state", rt);
    let subscribers = app
        .store
        .subscribers(
            &client,
            &medkit::realtime::subscription::Subscription::channel(&channel, "state:channel"),
        )
        .await
        .unwrap();
    assert_eq!(subscribers, vec![ConnectionId::parse(conn).unwrap()]);
    if let Some(rt) = rt {
        rt.reset();
    }
    let combined = say(
        app,
        conn,
        frame("get", 7, "config", json!({"config_id": "combined"})),
    )
    .await;
    assert_eq!(combined["data"]["config_id"], "combined");
    count("get config combined", rt);
    let r = say(
        app,
        conn,
        frame("unsubscribe", 8, "state", json!({"topic_id": "channel"})),
    )
    .await;
    assert_eq!(r["data"]["ok"], true);
    count("unsubscribe state", rt);
    // A poll's verbs.
    let created = say(
        app,
        conn,
        frame(
            "create",
            11,
            "poll",
            json!({"poll_id": "boss", "prompt": "?", "options": ["a", "b"]}),
        ),
    )
    .await;
    assert_eq!(created["data"]["poll"]["status"], "active", "{created}");
    count("create poll", rt);
    let got = say(
        app,
        conn,
        frame("get", 12, "poll", json!({"poll_id": "boss"})),
    )
    .await;
    assert_eq!(got["data"]["results"], json!([0, 0]));
    count("get poll", rt);
    let stopped = say(
        app,
        conn,
        frame(
            "reconfigure",
            13,
            "poll",
            json!({"poll_id": "boss", "config": {"endsAt": -1}}),
        ),
    )
    .await;
    assert_eq!(stopped["data"]["poll"]["status"], "expired");
    count("reconfigure poll (stop)", rt);
    let deleted = say(
        app,
        conn,
        frame("delete", 14, "poll", json!({"poll_id": "boss"})),
    )
    .await;
    assert_eq!(deleted["data"], json!({"ok": true}));
    count("delete poll", rt);
    let gone = say(
        app,
        conn,
        frame("get", 15, "poll", json!({"poll_id": "boss"})),
    )
    .await;
    assert_eq!(gone["errors"][0]["number"], 404);
    if let Some(rt) = rt {
        rt.reset();
    }
    // A ping on a game's connection is still a ping.
    let r = medkit_socket::handle(
        app,
        event("$default", conn, None, Some(r#"{"type":"ping"}"#)),
    )
    .await;
    assert_eq!(body_of(&r), json!({"type": "pong"}));
    // Disconnect forgets the session and its subscriptions.
    say(
        app,
        conn,
        frame("subscribe", 9, "config", json!({"config_id": "channel"})),
    )
    .await;
    if let Some(rt) = rt {
        rt.reset();
    }
    let r = medkit_socket::handle(app, event("$disconnect", conn, None, None)).await;
    assert_eq!(r.status_code, 200);
    count("$disconnect (one subscription)", rt);
    assert!(
        app.store
            .session(&ConnectionId::parse(conn).unwrap())
            .await
            .unwrap()
            .is_none()
    );
    let config_subs =
        medkit::realtime::subscription::Subscription::channel(&channel, "config:channel");
    assert!(
        app.store
            .subscribers(&client, &config_subs)
            .await
            .unwrap()
            .is_empty()
    );
    // Its next frame (a race with the disconnect) finds no session: the
    // reply says so and the connection is closed after it.
    let r = medkit_socket::handle(
        app,
        event(
            "$default",
            conn,
            None,
            Some(&frame("get", 10, "state", json!({"state_id": "channel"}))),
        ),
    )
    .await;
    assert_eq!(r.status_code, 200);
    assert!(r.body.is_none(), "the reply went by the Management API");
    let posted = poster.take();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].1["errors"][0]["number"], 401);
    assert_eq!(
        poster.closed.lock().unwrap().as_slice(),
        &[ConnectionId::parse(conn).unwrap()]
    );
    for (what, n) in &trips {
        println!("GameLink round trips: {what} = {n}");
    }
    if rt.is_some() {
        let of = |w: &str| trips.iter().find(|(x, _)| x == w).map(|(_, n)| *n).unwrap();
        assert_eq!(of("$connect"), 1);
        assert_eq!(of("a verb before authenticate"), 1);
        // Session, wrong-PIN budget, claim (take + bind), budget back,
        // session written, the channel's games list.
        assert_eq!(of("authenticate (PIN)"), 7);
        // Session + the document's own (REST: 1 for set and get, 2 for patch).
        assert_eq!(of("set state"), 2);
        assert_eq!(of("get state"), 2);
        assert_eq!(of("patch state"), 3);
        assert_eq!(of("subscribe state"), 2);
        assert_eq!(of("get config combined"), 2);
        // Session, then the session's list and the subscription item in parallel.
        assert_eq!(of("unsubscribe state"), 3);
        assert_eq!(of("$disconnect (one subscription)"), 2);
        // Session, the definition written (read + conditional write), the
        // figures (read once: the update and the reply).
        assert_eq!(of("create poll"), 4);
        // Session, then the definition and the figures side by side.
        assert_eq!(of("get poll"), 3);
        // Session, the definition rewritten (claiming the `expired` update), the figures.
        assert_eq!(of("reconfigure poll (stop)"), 4);
        // The definition, then REST's DELETE vote (a new generation and its sweep).
        assert!(of("delete poll") <= 20, "{trips:?}");
    }
}

#[tokio::test]
async fn a_game_session_through_the_lambda_entry() {
    let poster = Arc::new(RecordingPoster::default());
    let (app, _) = app_with_poster(EmbeddedStore::in_memory(), Env::Sandbox, poster.clone());
    session_through_the_lambda_entry(&app, &poster, None).await;
}

#[tokio::test]
async fn a_game_session_through_the_lambda_entry_on_dynamodb() {
    let Some((store, rt)) = testing::dynamo_store("socket gamelink session").await else {
        return;
    };
    let poster = Arc::new(RecordingPoster::default());
    let (app, _) = app_with_poster(store, Env::Sandbox, poster.clone());
    session_through_the_lambda_entry(&app, &poster, Some(&rt)).await;
}

/// A connection that never authenticates is over after the login window:
/// its next frame is answered and the connection closed (on AWS no timer
/// runs; the session item expires and the next frame finds none).
#[tokio::test]
async fn an_unauthenticated_session_ends_after_its_window() {
    let poster = Arc::new(RecordingPoster::default());
    let (app, _) = app_with_poster(EmbeddedStore::in_memory(), Env::Sandbox, poster.clone());
    let id = ConnectionId::parse("late=").unwrap();
    let opened = now_secs() - LOGIN_WINDOW_SECS - 1;
    let session = Session::opened(id.clone(), ClientId::parse(CLIENT_ID).unwrap(), opened);
    app.store.put_session(&session).await.unwrap();
    let r = say(
        &app,
        "late=",
        frame(
            "authenticate",
            1,
            "",
            json!({"client_id": CLIENT_ID, "pin": "ABC234"}),
        ),
    )
    .await;
    assert_eq!(r, Value::Null);
    let posted = poster.take();
    assert!(
        posted[0].1["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("30 s"),
        "{posted:?}"
    );
    assert_eq!(poster.closed.lock().unwrap().as_slice(), &[id]);
}
