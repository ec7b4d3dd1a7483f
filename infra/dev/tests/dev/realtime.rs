//! Real-time delivery through the real `medkit serve` binary: WebSocket
//! clients on loopback connect with tokens, REST sends and state writes reach
//! them as frames, in both fan-out modes (in process, and through the
//! server's own Management API with the AWS SDK, as in Lambda).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use medkit::realtime::envelope::decode_message;
use reqwest::Method as M;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::{Server, send};

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) struct Ctx {
    pub(crate) server: Server,
    pub(crate) client_id: String,
}

impl Ctx {
    pub(crate) fn start(args: &[&str]) -> Ctx {
        let mut all = vec!["--memory"];
        all.extend_from_slice(args);
        let server = Server::start(&all);
        let client_id = server.banner_value("client id:");
        Ctx { server, client_id }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/v1/e/{path}", self.server.base)
    }

    /// A token from the sandbox flow, for any role, channel and user.
    pub(crate) async fn token(&self, role: &str, channel: &str, user: Option<&str>) -> String {
        let mut body = json!({"app_id": self.client_id, "channel_id": channel});
        if let Some(u) = user {
            body["user_id"] = json!(u);
        }
        let (s, v) = send(
            M::POST,
            &self.url(&format!("authtoken?role={role}")),
            None,
            Some(body),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        v["token"].as_str().unwrap().to_string()
    }

    pub(crate) fn auth(&self, token: &str) -> String {
        format!("{} {token}", self.client_id)
    }

    /// Opens a WebSocket; the handshake's HTTP status when refused.
    pub(crate) async fn connect(&self, client_id: &str, token: &str) -> Result<Ws, u16> {
        let url = format!(
            "{}/ws?client_id={client_id}&token={token}",
            self.server.base.replacen("http://", "ws://", 1)
        );
        let req = url.into_client_request().unwrap();
        match tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(req),
        )
        .await
        {
            Ok(Ok((ws, _))) => Ok(ws),
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(res))) => Err(res.status().as_u16()),
            Ok(Err(e)) => panic!("connect: {e}"),
            Err(_) => panic!("connect timed out"),
        }
    }

    pub(crate) async fn viewer_socket(&self, channel: &str, user: &str) -> Ws {
        let t = self.token("viewer", channel, Some(user)).await;
        self.connect(&self.client_id, &t)
            .await
            .expect("viewer connects")
    }

    pub(crate) async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        send(
            M::POST,
            &self.url(path),
            Some(&self.auth(token)),
            Some(body),
        )
        .await
    }
}

/// The next text frame within `wait`, parsed; None if nothing came.
pub(crate) async fn next_frame(ws: &mut Ws, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .ok()??
            .ok()?;
        if let Message::Text(t) = msg {
            return Some(serde_json::from_str(t.as_str()).expect("frames are JSON"));
        }
    }
}

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(300);

/// The frame's topic and its decoded envelope.
fn opened(frame: &Value) -> (String, Value) {
    let topic = frame["topic"].as_str().unwrap().to_string();
    let env = decode_message(frame["message"].as_str().unwrap()).expect("a decodable message");
    (topic, env)
}

#[tokio::test]
async fn connect_refuses_bad_tokens_with_the_handshake_status() {
    let ctx = Ctx::start(&[]);
    let good = ctx.token("viewer", "1001", Some("5")).await;
    assert_eq!(
        ctx.connect(&ctx.client_id, "").await.err(),
        Some(401),
        "no token"
    );
    let forged = format!("{}x", &good[..good.len() - 1]);
    assert_eq!(
        ctx.connect(&ctx.client_id, &forged).await.err(),
        Some(401),
        "forged"
    );
    assert_eq!(
        ctx.connect("someone-else", &good).await.err(),
        Some(401),
        "unknown client"
    );
    let expired = expired_token(&ctx);
    assert_eq!(
        ctx.connect(&ctx.client_id, &expired).await.err(),
        Some(401),
        "expired"
    );
    assert!(ctx.connect(&ctx.client_id, &good).await.is_ok());
}

/// A viewer token the demo extension signed that expired an hour ago.
fn expired_token(ctx: &Ctx) -> String {
    demo_token(ctx, -3600)
}

/// A viewer token of channel 1001 the demo extension signed, expiring in
/// `ttl` seconds.
pub(crate) fn demo_token(ctx: &Ctx, ttl: i64) -> String {
    let secret = ctx.server.banner_value("secret:");
    let mut reg = medkit::registry::Registry::default();
    let bytes = medkit::registry::decode_secret(&secret).unwrap();
    reg.add(
        medkit::ids::ClientId::parse(ctx.client_id.as_str()).unwrap(),
        &bytes,
    );
    let claims = medkit::auth::claims_for(medkit::auth::Role::Viewer, "1001", None, ttl);
    medkit::auth::mint(reg.get(&ctx.client_id).unwrap(), claims)
}

async fn broadcasts_whispers_and_events(ctx: &Ctx) {
    let mut a = ctx.viewer_socket("1001", "71").await;
    let mut a2 = ctx.viewer_socket("1001", "72").await;
    let mut other = ctx.viewer_socket("2002", "73").await;
    let caster = ctx.token("broadcaster", "1001", Some("1001")).await;

    // A channel broadcast reaches that channel's sockets only.
    let (s, v) = ctx
        .post(
            "broadcast",
            &caster,
            json!({"target": "broadcast", "event": "score", "data": {"n": 1}}),
        )
        .await;
    assert_eq!((s, v), (200, json!({})));
    for ws in [&mut a, &mut a2] {
        let (topic, env) = opened(&next_frame(ws, WAIT).await.expect("a frame"));
        assert_eq!(topic, "broadcast");
        assert_eq!(
            env,
            json!({"event": format!("sandbox:{}:score", ctx.client_id), "data": {"n": 1}})
        );
    }
    assert!(
        next_frame(&mut other, QUIET).await.is_none(),
        "another channel hears nothing"
    );

    // A whisper by opaque id reaches one viewer.
    let (s, _) = ctx
        .post(
            "broadcast",
            &caster,
            json!({"target": "whisper-U71", "event": "psst", "data": "hi"}),
        )
        .await;
    assert_eq!(s, 200);
    let (topic, env) = opened(&next_frame(&mut a, WAIT).await.unwrap());
    assert_eq!(
        (topic.as_str(), &env["data"]),
        ("whisper-U71", &json!("hi"))
    );
    assert!(
        next_frame(&mut a2, QUIET).await.is_none(),
        "not whispered to"
    );

    // Over 4 KB: delivered compressed, decoded intact.
    let big = json!({"text": "lorem ipsum ".repeat(600)});
    let (s, _) = ctx
        .post(
            "broadcast",
            &caster,
            json!({"target": "broadcast", "event": "big", "data": big}),
        )
        .await;
    assert_eq!(s, 200);
    let frame = next_frame(&mut a, WAIT).await.unwrap();
    assert!(
        !frame["message"].as_str().unwrap().starts_with('{'),
        "compressed"
    );
    assert!(frame["message"].as_str().unwrap().len() <= 4096);
    assert_eq!(opened(&frame).1["data"], big);
    next_frame(&mut a2, WAIT).await.unwrap();

    // State writes reach viewers as events.
    let (s, _) = send(
        M::POST,
        &ctx.url("channel_state"),
        Some(&ctx.auth(&caster)),
        Some(json!({"round": 2})),
    )
    .await;
    assert_eq!(s, 200);
    for ws in [&mut a, &mut a2] {
        let (topic, env) = opened(&next_frame(ws, WAIT).await.unwrap());
        assert_eq!(topic, "broadcast");
        assert_eq!(
            env["event"],
            format!("sandbox:{}:channel_state_update", ctx.client_id)
        );
    }

    // An extension-wide send reaches every channel, on topic `global`.
    let admin = ctx.token("admin", "1001", None).await;
    let (s, _) = ctx
        .post(
            "extension_broadcast",
            &admin,
            json!({"target": "broadcast", "event": "all", "data": 1}),
        )
        .await;
    assert_eq!(s, 200);
    for ws in [&mut a2, &mut other] {
        let frame = next_frame(ws, WAIT).await.unwrap();
        assert_eq!(frame["topic"], "global");
    }
    // Pings are answered; anything else gets an error frame.
    other
        .send(Message::Text(r#"{"type":"ping"}"#.into()))
        .await
        .unwrap();
    assert_eq!(
        next_frame(&mut other, WAIT).await.unwrap(),
        json!({"type": "pong"})
    );
    other.send(Message::Text("hello".into())).await.unwrap();
    let err = next_frame(&mut other, WAIT).await.unwrap();
    assert_eq!(err["type"], "error");
    assert!(err["reason"].as_str().unwrap().contains("broadcast"));
}

#[tokio::test]
async fn sends_reach_the_right_sockets_in_process() {
    let ctx = Ctx::start(&[]);
    broadcasts_whispers_and_events(&ctx).await;
}

#[tokio::test]
async fn sends_reach_the_right_sockets_through_the_management_api() {
    let ctx = Ctx::start(&["--fanout", "api"]);
    broadcasts_whispers_and_events(&ctx).await;
}

#[tokio::test]
async fn management_api_answers_410_for_unknown_connections() {
    let ctx = Ctx::start(&[]);
    let client = reqwest::Client::new();
    for method in [M::POST, M::GET, M::DELETE] {
        let res = client
            .request(
                method.clone(),
                format!("{}/ws/@connections/nobody123=", ctx.server.base),
            )
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 410, "{method}");
        assert_eq!(res.headers()["x-amzn-errortype"], "GoneException");
    }
    // And the SDK client reads that as `Gone`, which the fan-out acts on.
    let poster =
        medkit::delivery::management::ManagementPoster::connect(&format!("{}/ws", ctx.server.base))
            .unwrap();
    let id = medkit::ids::ConnectionId::parse("nobody123=").unwrap();
    let r = medkit::delivery::Poster::post(&poster, &id, &bytes::Bytes::from_static(b"{}")).await;
    assert_eq!(r, Err(medkit::delivery::PostError::Gone));
}

#[tokio::test]
async fn bad_sends_are_refused_and_deliver_nothing() {
    let ctx = Ctx::start(&[]);
    let mut a = ctx.viewer_socket("1001", "81").await;
    let viewer = ctx.token("viewer", "1001", Some("82")).await;
    let caster = ctx.token("broadcaster", "1001", Some("1001")).await;
    let ok = json!({"target": "broadcast", "event": "e", "data": 1});
    let cases: Vec<(&str, &String, Value, u16)> = vec![
        ("broadcast", &viewer, ok.clone(), 403),
        ("pusher_broadcast", &viewer, ok.clone(), 403),
        ("extension_broadcast", &caster, ok.clone(), 403),
        (
            "broadcast",
            &caster,
            json!({"target": "broadcast", "event": "e", "channel_id": "2002"}),
            403,
        ),
        (
            "broadcast",
            &caster,
            json!({"target": "broadcast", "data": 1}),
            400,
        ),
        ("broadcast", &caster, json!({"event": "e", "data": 1}), 400),
        (
            "broadcast",
            &caster,
            json!({"target": "everyone", "event": "e"}),
            400,
        ),
        (
            "broadcast",
            &caster,
            json!({"target": "broadcast", "event": "e", "data": medkit::random::token_id(9000)}),
            413,
        ),
    ];
    for (path, token, body, status) in cases {
        let (s, v) = ctx.post(path, token, body.clone()).await;
        assert_eq!(s, status, "{path} {body}: {v}");
        assert!(v["reason"].as_str().is_some_and(|r| !r.is_empty()));
    }
    assert!(
        next_frame(&mut a, QUIET).await.is_none(),
        "nothing was delivered"
    );

    // 100 sends per 5 minutes per channel; the 101st is refused and not delivered.
    // (The oversized and refused sends above did not count.)
    for i in 0..100 {
        let (s, v) = ctx
            .post(
                "broadcast",
                &caster,
                json!({"target": "broadcast", "event": "n", "data": i}),
            )
            .await;
        assert_eq!(s, 200, "send {i}: {v}");
    }
    let (s, v) = ctx
        .post(
            "broadcast",
            &caster,
            json!({"target": "broadcast", "event": "n", "data": 100}),
        )
        .await;
    assert_eq!(s, 429, "{v}");
    let mut received = 0;
    while let Some(f) = next_frame(&mut a, QUIET).await {
        assert_ne!(
            opened(&f).1["data"],
            json!(100),
            "the refused send was delivered"
        );
        received += 1;
    }
    assert_eq!(received, 100);
    // Another channel still has its own budget.
    let other = ctx.token("broadcaster", "2002", Some("2002")).await;
    let (s, _) = ctx
        .post(
            "broadcast",
            &other,
            json!({"target": "broadcast", "event": "n"}),
        )
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn whisper_self_reaches_the_callers_other_instances_and_get_with_a_body_works() {
    let ctx = Ctx::start(&[]);
    let mut mine = ctx.viewer_socket("1001", "91").await;
    let mut theirs = ctx.viewer_socket("1001", "92").await;
    let me = ctx.token("viewer", "1001", Some("91")).await;
    // GET with a body, as the MEDKit docs describe it.
    let (s, v) = send(
        M::GET,
        &ctx.url("whisper_self"),
        Some(&ctx.auth(&me)),
        Some(json!({"event": "sync", "data": {"t": 3}})),
    )
    .await;
    assert_eq!((s, v), (200, json!({})));
    let (topic, env) = opened(&next_frame(&mut mine, WAIT).await.unwrap());
    assert_eq!(topic, "whisper-U91");
    assert_eq!(env["data"], json!({"t": 3}));
    assert!(next_frame(&mut theirs, QUIET).await.is_none());
}
