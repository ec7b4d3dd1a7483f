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
use medkit::gamelink::session::{LOGIN_WINDOW_SECS, Login, Session};
use medkit::ids::{ChannelId, ClientId, ConnectionId};
use medkit::store::ConnectionStore;
use medkit::store::embedded::EmbeddedStore;
use medkit::testing::{
    self, CLIENT_ID, RecordingPoster, RecordingTimers, RoundTripCounter, app_with_poster,
};
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

/// On the Lambda path a poll's start and end are timers in the queue (SQS
/// delayed messages on AWS), each naming this run of the poll; a stop sets
/// none (it announces at once), a new end sets its own.
#[tokio::test]
async fn a_polls_start_and_end_are_queued_timers() {
    use medkit::delivery::timers::Timer;
    let queue = Arc::new(RecordingTimers::default());
    let app = Arc::new(medkit::app::App {
        env: Env::Sandbox,
        registry: testing::registry(),
        store: EmbeddedStore::in_memory(),
        notifier: Arc::new(medkit::delivery::local::NoopNotifier),
        poster: Arc::new(RecordingPoster::default()),
        timers: Some(queue.clone()),
        expiry: Default::default(),
        tokens: Default::default(),
        relay: None,
    });
    let id = ConnectionId::parse("timed=").unwrap();
    let mut session = Session::opened(id, ClientId::parse(CLIENT_ID).unwrap(), now_secs());
    session.login = Some(Login {
        channel: ChannelId::parse(CHANNEL).unwrap(),
        token_id: "t1".into(),
        game_id: None,
    });
    session.expires_at = now_secs() + 3600;
    app.store.put_session(&session).await.unwrap();
    let now = now_secs();
    let created = say(
        &app,
        "timed=",
        frame(
            "create",
            1,
            "poll",
            json!({"poll_id": "boss", "prompt": "?", "options": ["a", "b"],
                   "config": {"startsIn": 60, "endsIn": 600}}),
        ),
    )
    .await;
    assert_eq!(created["data"]["poll"]["status"], "pending", "{created}");
    let queued = queue.take();
    assert_eq!(queued.len(), 2, "{queued:?}");
    let (Timer::PollStarts(start), Timer::PollEnds(end)) = (&queued[0].timer, &queued[1].timer)
    else {
        panic!("a start and an end: {queued:?}");
    };
    assert_eq!(
        (start.poll_id.as_str(), start.channel.as_str()),
        ("boss", CHANNEL)
    );
    assert_eq!(start.run, end.run, "one run");
    let starts_at = queued[0].at_ms / 1000;
    assert!((now + 60..=now + 61).contains(&starts_at), "{queued:?}");
    assert_eq!(queued[1].at_ms / 1000 - starts_at, 540, "{queued:?}");
    // Stopped now: announced in the reply, nothing to wait for.
    let stopped = say(
        &app,
        "timed=",
        frame(
            "reconfigure",
            2,
            "poll",
            json!({"poll_id": "boss", "config": {"endsAt": -1}}),
        ),
    )
    .await;
    assert_eq!(stopped["data"]["poll"]["status"], "expired", "{stopped}");
    assert!(queue.take().is_empty());
}

/// A game server's matches through the Lambda entry (each frame its own
/// invocation), the pushes delivered by the fan-out to the recording
/// poster; on DynamoDB each verb's round trips are counted.
async fn matches_through_the_lambda_entry<S: GameStore + Clone>(
    store: S,
    rt: Option<&RoundTripCounter>,
) {
    let poster = Arc::new(RecordingPoster::default());
    let app = Arc::new(medkit::app::App {
        env: Env::Sandbox,
        registry: testing::registry(),
        store: store.clone(),
        notifier: Arc::new(medkit::delivery::fanout::FanoutNotifier {
            store,
            poster: poster.clone(),
            env: Env::Sandbox,
            relay: None,
        }),
        poster: poster.clone(),
        timers: None,
        expiry: Default::default(),
        tokens: Default::default(),
        relay: None,
    });
    let mut trips = Vec::new();
    let mut count = |what: &str| {
        if let Some(rt) = rt {
            trips.push((what.to_string(), rt.get()));
            rt.reset();
        }
    };
    let conn = "server1=";
    let r = medkit_socket::handle(
        &app,
        event(
            "$connect",
            conn,
            Some(json!({"client_id": CLIENT_ID})),
            None,
        ),
    )
    .await;
    assert_eq!(r.status_code, 200);
    // A broadcaster's token is no server's; a backend token is.
    let caster = testing::token(medkit::auth::Role::Broadcaster, "10", Some("10"));
    let r = say(
        &app,
        conn,
        frame(
            "authenticate",
            1,
            "",
            json!({"client_id": CLIENT_ID, "jwt": caster}),
        ),
    )
    .await;
    assert_eq!(r["errors"][0]["number"], 403, "{r}");
    let backend = testing::token(medkit::auth::Role::Backend, "10", None);
    rt.inspect(|rt| rt.reset());
    let r = say(
        &app,
        conn,
        frame(
            "authenticate",
            2,
            "",
            json!({"client_id": CLIENT_ID, "jwt": backend}),
        ),
    )
    .await;
    assert!(r.get("errors").is_none(), "{r}");
    count("authenticate (server)");
    let ok = |r: &Value| assert!(r.get("errors").is_none(), "{r}");
    ok(&say(&app, conn, frame("create", 3, "match", json!({"id": "m1"}))).await);
    count("create match");
    let r = say(
        &app,
        conn,
        frame(
            "add_channels",
            4,
            "match",
            json!({"id": "m1", "channel_ids": ["10", "11"]}),
        ),
    )
    .await;
    assert_eq!(r["data"]["channels"], json!(["10", "11"]), "{r}");
    count("add_channels");
    ok(&say(
        &app,
        conn,
        frame("subscribe", 5, "match_poll", json!({"topic_id": "m1"})),
    )
    .await);
    count("subscribe match_poll");
    poster.take();
    let created = say(
        &app,
        conn,
        frame(
            "create",
            6,
            "match_poll",
            json!({"id": "m1", "poll": {"poll_id": "boss", "prompt": "?", "options": ["a", "b"]}}),
        ),
    )
    .await;
    assert_eq!(created["data"]["overall"]["status"], "active", "{created}");
    count("create match_poll (2 channels)");
    let pushed = poster.take();
    assert_eq!(pushed.len(), 1, "{pushed:?}");
    assert_eq!(pushed[0].0.as_str(), conn);
    assert_eq!(pushed[0].1["meta"]["target"], "match_poll");
    assert_eq!(pushed[0].1["data"]["results"]["11"]["status"], "active");
    // Each channel has its part: its rules are a channel poll's.
    let client = ClientId::parse(CLIENT_ID).unwrap();
    for ch in ["10", "11"] {
        let part =
            medkit::game_polls::load(&app.store, &client, &ChannelId::parse(ch).unwrap(), "boss")
                .await
                .unwrap()
                .expect("a part");
        assert_eq!(part.match_id.as_deref(), Some("m1"));
    }
    rt.inspect(|rt| rt.reset());
    let stopped = say(
        &app,
        conn,
        frame(
            "reconfigure",
            7,
            "match_poll",
            json!({"id": "m1", "poll_id": "boss", "config": {"endsAt": -1}}),
        ),
    )
    .await;
    assert_eq!(stopped["data"]["overall"]["status"], "expired", "{stopped}");
    count("reconfigure match_poll (stop)");
    let pushed = poster.take();
    assert_eq!(pushed.len(), 1, "one expired update");
    let part = medkit::game_polls::load(
        &app.store,
        &client,
        &ChannelId::parse("11").unwrap(),
        "boss",
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        part.status(now_secs()),
        medkit::gamelink::poll::Status::Expired
    );
    ok(&say(
        &app,
        conn,
        frame(
            "delete",
            8,
            "match_poll",
            json!({"id": "m1", "poll_id": "boss"}),
        ),
    )
    .await);
    count("delete match_poll (2 channels)");
    assert!(
        medkit::game_polls::load(
            &app.store,
            &client,
            &ChannelId::parse("10").unwrap(),
            "boss"
        )
        .await
        .unwrap()
        .is_none()
    );
    // Bad input: one error reply each, the connection still usable.
    for (f, number) in [
        (frame("create", 9, "match", json!({"id": 5})), 400),
        (frame("keepalive", 10, "match", json!({"id": "none"})), 404),
        (
            frame(
                "add_channels",
                11,
                "match",
                json!({"id": "m1", "channel_ids": "10"}),
            ),
            400,
        ),
        (
            frame(
                "create",
                12,
                "match_poll",
                json!({"id": "m1", "poll": {"poll_id": "p", "prompt": "?", "options": []}}),
            ),
            400,
        ),
        (
            frame(
                "reconfigure",
                13,
                "match_poll",
                json!({"id": "m1", "poll_id": "gone", "config": {}}),
            ),
            404,
        ),
        (
            frame("get", 14, "state", json!({"state_id": "channel"})),
            403,
        ),
    ] {
        let r = say(&app, conn, f).await;
        assert_eq!(r["errors"][0]["number"], number, "{r}");
    }
    ok(&say(
        &app,
        conn,
        frame("keepalive", 15, "match", json!({"id": "m1"})),
    )
    .await);
    for (what, n) in &trips {
        println!("GameLink match round trips: {what} = {n}");
    }
    if rt.is_some() {
        let of = |w: &str| trips.iter().find(|(x, _)| x == w).map(|(_, n)| *n).unwrap();
        // Session, then the session written.
        assert_eq!(of("authenticate (server)"), 2);
        // Session, the match read and written.
        assert_eq!(of("create match"), 3);
        assert_eq!(of("add_channels"), 3);
        assert_eq!(of("subscribe match_poll"), 2);
        // Session, the match, the record (read + write), each channel's
        // part (read + write), each channel's figures, the subscribers of
        // the update.
        assert_eq!(of("create match_poll (2 channels)"), 11);
        // Session, the record (read + write), each part (read + write),
        // each channel's figures, the subscribers of the `expired` update.
        assert_eq!(of("reconfigure match_poll (stop)"), 10);
        // The record, then per channel its part and REST's DELETE vote.
        assert!(of("delete match_poll (2 channels)") <= 44, "{trips:?}");
    }
}

#[tokio::test]
async fn matches_through_the_lambda_entry_on_the_embedded_store() {
    matches_through_the_lambda_entry(EmbeddedStore::in_memory(), None).await;
}

#[tokio::test]
async fn matches_through_the_lambda_entry_on_dynamodb() {
    if let Some((store, rt)) = testing::dynamo_store("socket gamelink matches").await {
        matches_through_the_lambda_entry(store, Some(&rt)).await;
    }
}
