//! GameLink end to end: a game client of our own, speaking the frames
//! exactly as Muxy's GameLink library sends them (keys in sorted order,
//! `target` left out when empty, `data` when there is none), against the
//! real `medkit serve` binary, on the embedded store and on DynamoDB Local.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use medkit::realtime::envelope::decode_message;
use reqwest::Method as M;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{dynamodb, send};
use crate::realtime::{Ctx, Ws, next_frame};

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(400);

/// A game's connection, as the SDK drives it.
pub(crate) struct Game {
    ws: Ws,
    next_id: u16,
    /// Pushed updates that arrived while waiting for a reply.
    updates: VecDeque<Value>,
}

/// A frame as the library serializes it.
pub(crate) fn frame(action: &str, request_id: u16, target: &str, data: Option<&Value>) -> String {
    let params = if target.is_empty() {
        format!(r#"{{"request_id":{request_id}}}"#)
    } else {
        format!(
            r#"{{"request_id":{request_id},"target":{}}}"#,
            json!(target)
        )
    };
    match data {
        Some(d) => format!(
            r#"{{"action":{},"data":{d},"params":{params}}}"#,
            json!(action)
        ),
        None => format!(r#"{{"action":{},"params":{params}}}"#, json!(action)),
    }
}

impl Game {
    /// Connects at the SDK's URL, `ws://host/<version>/<client id>`.
    pub(crate) async fn connect(ctx: &Ctx) -> Game {
        let url = format!(
            "{}/0.2.0/{}",
            ctx.server.base.replacen("http://", "ws://", 1),
            ctx.client_id
        );
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect timed out")
            .expect("a game connects without a token");
        Game {
            ws,
            next_id: 1,
            updates: VecDeque::new(),
        }
    }

    pub(crate) async fn send_raw(&mut self, text: String) {
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    /// The next frame that is not an update.
    async fn reply(&mut self) -> Value {
        loop {
            let f = next_frame(&mut self.ws, WAIT).await.expect("a reply");
            if f["meta"]["action"] == "update" {
                self.updates.push_back(f);
            } else {
                return f;
            }
        }
    }

    /// Sends one request and returns its reply (which must carry its id).
    pub(crate) async fn request(
        &mut self,
        action: &str,
        target: &str,
        data: Option<Value>,
    ) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send_raw(frame(action, id, target, data.as_ref()))
            .await;
        let r = self.reply().await;
        assert_eq!(r["meta"]["request_id"], id, "{r}");
        assert_eq!(r["meta"]["action"], action, "{r}");
        assert_eq!(r["meta"]["target"], target, "{r}");
        assert!(r["meta"]["timestamp"].as_i64().unwrap() > 0, "{r}");
        r
    }

    /// A request that must succeed: its `data`.
    pub(crate) async fn ok(&mut self, action: &str, target: &str, data: Option<Value>) -> Value {
        let r = self.request(action, target, data).await;
        assert!(r.get("errors").is_none(), "{action} {target}: {r}");
        r["data"].clone()
    }

    /// A request that must fail: its error's number and detail.
    pub(crate) async fn refused(
        &mut self,
        action: &str,
        target: &str,
        data: Option<Value>,
    ) -> (u64, String) {
        let r = self.request(action, target, data).await;
        assert!(r.get("data").is_none(), "{r}");
        let e = &r["errors"][0];
        (
            e["number"].as_u64().unwrap(),
            e["detail"].as_str().unwrap().to_string(),
        )
    }

    /// The next pushed update of `target`, within `wait`.
    pub(crate) async fn update(&mut self, target: &str, wait: Duration) -> Option<Value> {
        if let Some(i) = self
            .updates
            .iter()
            .position(|u| u["meta"]["target"] == target)
        {
            return self.updates.remove(i);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let f = next_frame(&mut self.ws, left).await?;
            if f["meta"]["action"] == "update" && f["meta"]["target"] == target {
                assert_eq!(f["meta"]["request_id"], 65535, "{f}");
                return Some(f);
            }
            self.updates.push_back(f);
        }
    }

    pub(crate) async fn login_with_pin(&mut self, ctx: &Ctx, pin: &str) -> Value {
        self.ok(
            "authenticate",
            "",
            Some(json!({"client_id": ctx.client_id, "pin": pin})),
        )
        .await
    }
}

/// A GameLink PIN for `channel`, as the broadcaster's extension asks for it.
pub(crate) async fn game_pin(ctx: &Ctx, channel: &str) -> String {
    let caster = ctx.token("broadcaster", channel, Some(channel)).await;
    let (s, v) = ctx.post("gamelink/token", &caster, json!({})).await;
    assert_eq!(s, 200, "{v}");
    v["token"].as_str().unwrap().to_string()
}

/// A game logged in to `channel`.
pub(crate) async fn logged_in_game(ctx: &Ctx, channel: &str) -> (Game, Value) {
    let pin = game_pin(ctx, channel).await;
    let mut game = Game::connect(ctx).await;
    let login = game.login_with_pin(ctx, &pin).await;
    (game, login)
}

fn ctx_on(store: Option<&str>, extra: &[&str]) -> Ctx {
    match store {
        None => Ctx::start(extra),
        Some(endpoint) => {
            let prefix = format!("gl{}-", medkit::random::token_id(8).to_lowercase());
            let mut args = vec!["--dynamodb-endpoint", endpoint, "--table-prefix", &prefix];
            args.extend_from_slice(extra);
            Ctx::start(&args)
        }
    }
}

/// PIN login, refusals before it, the state and config verbs with their
/// pushes both ways, a game's broadcast, and the small targets.
async fn a_games_session(ctx: &Ctx) {
    let mut game = Game::connect(ctx).await;
    // Before authentication everything else is refused, and nothing happens.
    let (n, detail) = game
        .refused("get", "state", Some(json!({"state_id": "channel"})))
        .await;
    assert_eq!(n, 401, "{detail}");
    assert!(detail.contains("authenticate"), "{detail}");
    let (n, _) = game
        .refused(
            "authenticate",
            "",
            Some(json!({"client_id": ctx.client_id, "pin": "WRONG1"})),
        )
        .await;
    assert_eq!(n, 401);
    let (n, detail) = game
        .refused(
            "authenticate",
            "",
            Some(json!({"client_id": "other-extension", "pin": "ABC123"})),
        )
        .await;
    assert_eq!(n, 401, "{detail}");
    let pin = game_pin(ctx, "1001").await;
    let login = game.login_with_pin(ctx, &pin).await;
    assert_eq!(login["twitch_id"], "1001");
    let jwt = login["jwt"].as_str().unwrap();
    assert!(login["refresh"].as_str().unwrap().len() > 20);
    // The game's token is the broadcaster's: REST accepts it for that channel.
    let (s, v) = send(
        M::GET,
        &ctx.url("channel_state"),
        Some(&ctx.auth(jwt)),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    // A refresh token is no caller on REST.
    let refresh = login["refresh"].as_str().unwrap();
    let (s, _) = send(
        M::GET,
        &ctx.url("channel_state"),
        Some(&ctx.auth(refresh)),
        None,
    )
    .await;
    assert_eq!(s, 401);
    // The PIN is single-use.
    let mut second = Game::connect(ctx).await;
    let (n, _) = second
        .refused(
            "authenticate",
            "",
            Some(json!({"client_id": ctx.client_id, "pin": pin})),
        )
        .await;
    assert_eq!(n, 401);
    let (n, _) = game
        .refused(
            "authenticate",
            "",
            Some(json!({"client_id": ctx.client_id, "pin": pin})),
        )
        .await;
    assert_eq!(n, 409, "already authenticated");

    // State: set, get, patch; pushes to the game and to viewers.
    let mut viewer = ctx.viewer_socket("1001", "77").await;
    game.ok("subscribe", "state", Some(json!({"topic_id": "channel"})))
        .await;
    let set = game
        .ok(
            "set",
            "state",
            Some(json!({"state_id": "channel", "state": {"level": 1, "boss": "slime"}})),
        )
        .await;
    assert_eq!(
        set,
        json!({"ok": true, "state": {"level": 1, "boss": "slime"}})
    );
    let pushed = game.update("channel", WAIT).await.expect("a state update");
    assert_eq!(pushed["data"]["state"]["boss"], "slime");
    assert_eq!(pushed["data"]["topic_id"], "channel");
    let seen = next_frame(&mut viewer, WAIT)
        .await
        .expect("the viewer hears it");
    let env = decode_message(seen["message"].as_str().unwrap()).unwrap();
    // Events are scoped `<env>:<client id>:<name>`, as the official client expects.
    let scoped = |name: &str| format!("sandbox:{}:{name}", ctx.client_id);
    assert_eq!(env["event"], scoped("channel_state_update"), "{env}");
    assert_eq!(env["data"]["level"], 1);
    let patched = game
        .ok(
            "patch",
            "state",
            Some(json!({"state_id": "channel", "state": [
                {"op": "replace", "path": "/level", "value": 2},
                {"op": "add", "path": "/hp", "value": 30}
            ]})),
        )
        .await;
    assert_eq!(
        patched["state"],
        json!({"level": 2, "boss": "slime", "hp": 30})
    );
    game.update("channel", WAIT)
        .await
        .expect("the patch's update");
    let got = game
        .ok("get", "state", Some(json!({"state_id": "channel"})))
        .await;
    assert_eq!(got["state"]["hp"], 30);
    // A REST write by the broadcaster reaches the subscribed game.
    let caster = ctx.token("broadcaster", "1001", Some("1001")).await;
    let (s, _) = ctx
        .post("channel_state", &caster, json!({"from": "rest"}))
        .await;
    assert_eq!(s, 200);
    let pushed = game.update("channel", WAIT).await.expect("REST's update");
    assert_eq!(pushed["data"]["state"], json!({"from": "rest"}));
    // A patch that fails changes nothing and leaves the connection usable.
    let (n, _) = game
        .refused(
            "patch",
            "state",
            Some(json!({"state_id": "channel", "state": [{"op": "remove", "path": "/nope"}]})),
        )
        .await;
    assert_eq!(n, 400);
    // The REST rules: a broadcaster may not write extension state.
    let (n, _) = game
        .refused(
            "set",
            "state",
            Some(json!({"state_id": "extension", "state": {}})),
        )
        .await;
    assert_eq!(n, 403);
    let got = game
        .ok("get", "state", Some(json!({"state_id": "channel"})))
        .await;
    assert_eq!(got["state"], json!({"from": "rest"}));
    // Unsubscribed: no more updates.
    game.ok("unsubscribe", "state", Some(json!({"topic_id": "channel"})))
        .await;
    ctx.post("channel_state", &caster, json!({"later": true}))
        .await;
    assert!(game.update("channel", QUIET).await.is_none());
    // Extension state written by the extension reaches games subscribed to it.
    game.ok("subscribe", "state", Some(json!({"topic_id": "extension"})))
        .await;
    let admin = ctx.token("admin", "1001", None).await;
    let (s, _) = ctx
        .post("extension_state", &admin, json!({"season": 3}))
        .await;
    assert_eq!(s, 200);
    let pushed = game
        .update("extension", WAIT)
        .await
        .expect("extension state");
    assert_eq!(pushed["data"]["state"]["season"], 3);

    // Config.
    game.ok("subscribe", "config", Some(json!({"config_id": "channel"})))
        .await;
    let set = game
        .ok(
            "set",
            "config",
            Some(json!({"config": {"difficulty": "hard"}})),
        )
        .await;
    assert_eq!(set["config_id"], "channel");
    assert_eq!(set["config"]["difficulty"], "hard");
    let pushed = game.update("config", WAIT).await.expect("a config update");
    assert_eq!(
        pushed["data"],
        json!({"config": {"difficulty": "hard"}, "config_id": "channel"})
    );
    let (s, _) = ctx
        .post("config/channel", &caster, json!({"difficulty": "easy"}))
        .await;
    assert_eq!(s, 200);
    let pushed = game
        .update("config", WAIT)
        .await
        .expect("REST config update");
    assert_eq!(pushed["data"]["config"]["difficulty"], "easy");
    game.ok(
        "patch",
        "config",
        Some(json!({"config": [{"op": "add", "path": "/lives", "value": 3}]})),
    )
    .await;
    ctx.post("config/extension", &admin, json!({"theme": "dark"}))
        .await;
    let combined = game
        .ok("get", "config", Some(json!({"config_id": "combined"})))
        .await;
    assert_eq!(combined["config_id"], "combined");
    assert_eq!(combined["config"]["channel"]["lives"], 3);
    assert_eq!(combined["config"]["extension"]["theme"], "dark");
    let one = game
        .ok("get", "config", Some(json!({"config_id": "extension"})))
        .await;
    assert_eq!(
        one,
        json!({"config": {"theme": "dark"}, "config_id": "extension"})
    );

    // A game's broadcast reaches the channel's extension pages.
    let mut seen = Vec::new();
    game.ok(
        "broadcast",
        "",
        Some(json!({"topic": "boss_defeated", "data": {"by": "player1"}})),
    )
    .await;
    while let Some(f) = next_frame(&mut viewer, WAIT).await {
        let env = decode_message(f["message"].as_str().unwrap()).unwrap();
        let done = env["event"] == scoped("boss_defeated");
        seen.push(env);
        if done {
            break;
        }
    }
    let last = seen.last().expect("the broadcast arrived");
    assert_eq!(last["event"], scoped("boss_defeated"), "{seen:?}");
    assert_eq!(last["data"]["by"], "player1");
    let (n, _) = game
        .refused("broadcast", "", Some(json!({"data": {}})))
        .await;
    assert_eq!(n, 400, "no topic");

    // The datastream: any role of the channel posts, subscribed games hear
    // each post's events in order.
    game.ok("subscribe", "datastream", Some(json!({"topic_id": ""})))
        .await;
    let fan = ctx.token("viewer", "1001", Some("88")).await;
    for i in 0..3 {
        let (s, v) = ctx
            .post(
                "datastream",
                &fan,
                json!({"events": [{"n": i}, {"n": i + 10}]}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }
    for i in 0..3 {
        let u = game
            .update("datastream", WAIT)
            .await
            .expect("datastream events");
        let events = u["data"]["events"].as_array().unwrap().clone();
        let ns: Vec<i64> = events
            .iter()
            .map(|e| e["event"]["n"].as_i64().unwrap())
            .collect();
        assert_eq!(ns, vec![i, i + 10]);
        assert!(events[0]["timestamp"].as_i64().unwrap() > 0);
    }
    for bad in [
        json!({}),
        json!({"events": []}),
        json!({"event": 1, "events": [1]}),
    ] {
        let (s, v) = ctx.post("datastream", &fan, bad).await;
        assert_eq!(s, 400, "{v}");
        assert!(v["reason"].is_string());
    }
    assert!(
        game.update("datastream", QUIET).await.is_none(),
        "refused posts push nothing"
    );
    game.ok("unsubscribe", "datastream", None).await;

    // The small targets.
    let drops = game.ok("get", "drops", Some(json!({"status": "*"}))).await;
    assert_eq!(drops, json!({"drops": []}));
    let meta = game
        .ok(
            "set",
            "gameMetadata",
            Some(json!({"name": "Slime Quest", "logo": "data:image/png;base64,AA==", "theme": ""})),
        )
        .await;
    assert_eq!(meta, json!({"ok": true}));
    let (n, detail) = game.refused("fly", "moon", None).await;
    assert_eq!(n, 400, "{detail}");

    // Bad frames get one error reply each and the connection stays usable.
    game.send_raw("{not json".into()).await;
    let r = game.reply().await;
    assert_eq!(r["errors"][0]["number"], 400, "{r}");
    assert_eq!(r["meta"]["request_id"], 65535);
    game.send_raw(r#"{"action":"get","params":{"target":"state"}}"#.into())
        .await;
    let r = game.reply().await;
    assert!(
        r["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("request_id"),
        "{r}"
    );
    // A frame over API Gateway's 128 KB: one 413 reply, and the game carries on.
    let big = json!({"state_id": "channel", "state": {"blob": "x".repeat(130 * 1024)}});
    game.send_raw(frame("set", 900, "state", Some(&big))).await;
    let r = game.reply().await;
    assert_eq!(r["errors"][0]["number"], 413, "{r}");
    let got = game
        .ok("get", "state", Some(json!({"state_id": "channel"})))
        .await;
    assert_eq!(got["state"], json!({"later": true}));
}

/// A later session logs in with the refresh token and subscribes again;
/// `DELETE pin` revokes the refresh token and closes the game's session.
async fn reconnect_and_revoke(ctx: &Ctx) {
    let (mut first, login) = logged_in_game(ctx, "3003").await;
    let refresh = login["refresh"].as_str().unwrap().to_string();
    first
        .ok(
            "set",
            "state",
            Some(json!({"state_id": "channel", "state": {"saved": 1}})),
        )
        .await;
    drop(first);
    let mut again = Game::connect(ctx).await;
    let login = again
        .ok(
            "authenticate",
            "",
            Some(json!({"client_id": ctx.client_id, "game_id": "slime-quest", "refresh": refresh})),
        )
        .await;
    assert_eq!(login["twitch_id"], "3003");
    assert_eq!(login["refresh"], refresh.as_str());
    again
        .ok("subscribe", "state", Some(json!({"topic_id": "channel"})))
        .await;
    let got = again
        .ok("get", "state", Some(json!({"state_id": "channel"})))
        .await;
    assert_eq!(
        got["state"]["saved"], 1,
        "nothing the game relied on was lost"
    );
    let caster = ctx.token("broadcaster", "3003", Some("3003")).await;
    ctx.post("channel_state", &caster, json!({"saved": 2}))
        .await;
    assert!(again.update("channel", WAIT).await.is_some());
    // A forged refresh token is refused.
    let mut forged = Game::connect(ctx).await;
    let bad = format!("{}x", &refresh[..refresh.len() - 1]);
    let (n, _) = forged
        .refused(
            "authenticate",
            "",
            Some(json!({"client_id": ctx.client_id, "refresh": bad})),
        )
        .await;
    assert_eq!(n, 401);
    // Revoking the channel's PINs ends the session and the refresh token.
    let (s, v) = send(M::DELETE, &ctx.url("pin"), Some(&ctx.auth(&caster)), None).await;
    assert_eq!(s, 200, "{v}");
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match again.ws.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return true,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert_eq!(closed, Ok(true), "the revoked game's socket was closed");
    let (n, detail) = forged
        .refused(
            "authenticate",
            "",
            Some(json!({"client_id": ctx.client_id, "refresh": refresh})),
        )
        .await;
    assert_eq!(n, 401, "{detail}");
    assert!(detail.contains("revoked"), "{detail}");
}

/// Two games on two channels never see each other's state.
async fn channels_are_apart(ctx: &Ctx) {
    let (mut a, _) = logged_in_game(ctx, "4004").await;
    let (mut b, _) = logged_in_game(ctx, "5005").await;
    for g in [&mut a, &mut b] {
        g.ok("subscribe", "state", Some(json!({"topic_id": "channel"})))
            .await;
    }
    a.ok(
        "set",
        "state",
        Some(json!({"state_id": "channel", "state": {"who": "a"}})),
    )
    .await;
    assert!(a.update("channel", WAIT).await.is_some());
    assert!(
        b.update("channel", QUIET).await.is_none(),
        "b heard a's state"
    );
    let got = b
        .ok("get", "state", Some(json!({"state_id": "channel"})))
        .await;
    assert_eq!(got["state"], json!({}));
}

/// A viewer's vote on a poll id, as the MEDKit client casts it.
async fn vote(ctx: &Ctx, token: &str, poll: &str, value: i64) -> (u16, Value) {
    ctx.post(&format!("vote?id={poll}"), token, json!({"value": value}))
        .await
}

/// The SDK's `RunPoll`: delete, unsubscribe, subscribe, create.
async fn run_poll(game: &mut Game, id: &str, options: &[&str], config: Value) -> Value {
    game.ok("delete", "poll", Some(json!({"poll_id": id})))
        .await;
    game.ok("unsubscribe", "poll", Some(json!({"topic_id": id})))
        .await;
    game.ok("subscribe", "poll", Some(json!({"topic_id": id})))
        .await;
    game.ok(
        "create",
        "poll",
        Some(
            json!({"poll_id": id, "prompt": "Which way?", "options": options,
                    "config": config, "user_data": {"round": 1}}),
        ),
    )
    .await
}

/// Every update of a poll until `status` arrives (or `wait` passes).
async fn poll_updates_until(game: &mut Game, status: &str, wait: Duration) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(u) = game.update("poll", left).await else {
            return seen;
        };
        let done = u["data"]["poll"]["status"] == status;
        seen.push(u["data"].clone());
        if done {
            return seen;
        }
    }
}

/// A poll's life: active on creation, updates as viewers vote (the last
/// within a second), its rules enforced on the REST vote, exactly one
/// `expired` at its end, and a re-created poll untouched by the old one's
/// timer.
async fn polls(ctx: &Ctx) {
    let (mut game, _) = logged_in_game(ctx, "7007").await;
    let created = run_poll(&mut game, "route", &["left", "right"], json!({"endsIn": 3})).await;
    assert_eq!(created["poll"]["status"], "active");
    assert_eq!(created["results"], json!([0, 0]));
    let first = game
        .update("poll", WAIT)
        .await
        .expect("the poll became active");
    assert_eq!(first["data"]["poll"]["status"], "active");
    assert_eq!(first["data"]["poll"]["user_data"], json!({"round": 1}));
    let mut voters = Vec::new();
    for i in 0..5 {
        voters.push(ctx.token("viewer", "7007", Some(&format!("90{i}"))).await);
    }
    for (i, v) in voters.iter().enumerate() {
        let (s, body) = vote(ctx, v, "route", (i % 2) as i64).await;
        assert_eq!(s, 200, "{body}");
    }
    // Coalesced, but the last figures arrive within about a second.
    let started = std::time::Instant::now();
    let mut last = Value::Null;
    while last["count"] != 5 {
        let u = game
            .update("poll", Duration::from_millis(1500))
            .await
            .unwrap_or_else(|| panic!("no update with all 5 votes; last {last}"));
        last = u["data"].clone();
    }
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert_eq!(last["results"], json!([3, 2]));
    // The poll's rules on the REST vote: an option that does not exist.
    let (s, body) = vote(ctx, &voters[0], "route", 2).await;
    assert_eq!(s, 400, "{body}");
    let got = game
        .ok("get", "poll", Some(json!({"poll_id": "route"})))
        .await;
    assert_eq!(got["count"], 5);
    assert_eq!(got["poll"]["options"], json!(["left", "right"]));
    // Its end: exactly one `expired`, then votes are refused.
    let ends = poll_updates_until(&mut game, "expired", Duration::from_secs(6)).await;
    let expired: Vec<&Value> = ends
        .iter()
        .filter(|u| u["poll"]["status"] == "expired")
        .collect();
    assert_eq!(expired.len(), 1, "{ends:?}");
    assert_eq!(expired[0]["results"], json!([3, 2]));
    let (s, body) = vote(ctx, &voters[1], "route", 0).await;
    assert_eq!(s, 409, "{body}");
    // A stop after the end sends nothing more.
    game.ok(
        "reconfigure",
        "poll",
        Some(json!({"poll_id": "route", "config": {"endsAt": -1}})),
    )
    .await;
    assert!(game.update("poll", QUIET).await.is_none());

    // Stopped by hand, and a repeated stop: one `expired`.
    run_poll(&mut game, "dash", &["a", "b", "c"], json!({})).await;
    game.update("poll", WAIT).await.expect("active");
    for _ in 0..2 {
        game.ok(
            "reconfigure",
            "poll",
            Some(json!({"poll_id": "dash", "config": {"endsAt": -1}})),
        )
        .await;
    }
    let u = game.update("poll", WAIT).await.expect("expired");
    assert_eq!(u["data"]["poll"]["status"], "expired");
    assert!(
        game.update("poll", QUIET).await.is_none(),
        "a second expired"
    );

    // Deleted and created again: the old run's timer (1 s) never touches the new one.
    run_poll(&mut game, "again", &["x"], json!({"endsIn": 1})).await;
    game.update("poll", WAIT).await.expect("active");
    run_poll(&mut game, "again", &["x", "y"], json!({"endsIn": 30})).await;
    // Under load the old run's own updates (options x; its `expired` if it
    // ended before its delete) may still be on their way through the
    // stream: they are the old run's, not the new one's.
    let old_run = |u: &Value| u["data"]["poll"]["options"] == json!(["x"]);
    let u = loop {
        let u = game.update("poll", WAIT).await.expect("the new run active");
        if !old_run(&u) {
            break u;
        }
    };
    assert_eq!(u["data"]["poll"]["options"], json!(["x", "y"]));
    assert_eq!(u["data"]["poll"]["status"], "active");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    while let Some(u) = game.update("poll", QUIET).await {
        assert!(old_run(&u), "the old timer touched the new run: {u}");
    }
    let got = game
        .ok("get", "poll", Some(json!({"poll_id": "again"})))
        .await;
    assert_eq!(got["poll"]["status"], "active");

    // Disabled, identity-only, pending polls and bad polls.
    game.ok(
        "reconfigure",
        "poll",
        Some(json!({"poll_id": "again", "config": {"disabled": true}})),
    )
    .await;
    let (s, body) = vote(ctx, &voters[2], "again", 0).await;
    assert_eq!(s, 409, "{body}");
    run_poll(&mut game, "ids", &["a", "b"], json!({"userIDVoting": true})).await;
    let anonymous = ctx.token("viewer", "7007", None).await;
    let (s, body) = vote(ctx, &anonymous, "ids", 0).await;
    assert_eq!(s, 403, "{body}");
    assert_eq!(vote(ctx, &voters[3], "ids", 1).await.0, 200);
    run_poll(&mut game, "later", &["a"], json!({"startsIn": 60})).await;
    let (s, _) = vote(ctx, &voters[4], "later", 0).await;
    assert_eq!(s, 409, "not started");
    let too_many: Vec<String> = (0..33).map(|i| format!("o{i}")).collect();
    for bad in [
        json!({"poll_id": "b1", "prompt": "?", "options": []}),
        json!({"poll_id": "b2", "prompt": "?", "options": too_many}),
        json!({"poll_id": "b3", "prompt": "?", "options": ["a"], "config": {"endsAt": 5}}),
    ] {
        let (n, _) = game.refused("create", "poll", Some(bad)).await;
        assert_eq!(n, 400);
    }
    let (n, _) = game
        .refused(
            "create",
            "poll",
            Some(json!({"poll_id": "ids", "prompt": "?", "options": ["a"]})),
        )
        .await;
    assert_eq!(n, 409, "the id is taken");
    let (n, _) = game
        .refused("get", "poll", Some(json!({"poll_id": "nope"})))
        .await;
    assert_eq!(n, 404);
    // A REST poll with no game's definition keeps MEDKit's rules.
    assert_eq!(vote(ctx, &voters[0], "plain", 7).await.0, 200);
}

/// Every `match_poll` update until one says `done` of its data (or `wait`
/// passes): the last one seen.
async fn match_updates_until(
    server: &mut Game,
    wait: Duration,
    done: impl Fn(&Value) -> bool,
) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let u = server.update("match_poll", left).await?;
        if done(&u["data"]) {
            return Some(u["data"].clone());
        }
    }
}

/// A game server's match: only it runs one (a broadcaster's game is
/// refused), its channels hear its broadcasts, and its poll runs in every
/// channel, viewers voting on their own channel, with updates that carry
/// each channel's results and the overall; exactly one `expired`.
async fn matches(ctx: &Ctx) {
    let (mut caster_game, _) = logged_in_game(ctx, "8101").await;
    let (n, detail) = caster_game
        .refused("create", "match", Some(json!({"id": "m1"})))
        .await;
    assert_eq!(n, 403, "{detail}");
    let mut server = Game::connect(ctx).await;
    let (n, _) = server
        .refused("create", "match", Some(json!({"id": "m1"})))
        .await;
    assert_eq!(n, 401, "before authentication");
    let viewer_token = ctx.token("viewer", "8101", Some("5")).await;
    let (n, _) = server
        .refused(
            "authenticate",
            "",
            Some(json!({"client_id": ctx.client_id, "jwt": viewer_token})),
        )
        .await;
    assert_eq!(n, 403, "a viewer's token is no server's");
    let backend = ctx.token("backend", "8101", None).await;
    let login = server
        .ok(
            "authenticate",
            "",
            Some(json!({"client_id": ctx.client_id, "jwt": backend})),
        )
        .await;
    assert_eq!(login["refresh"], "");
    let (n, _) = server
        .refused("get", "state", Some(json!({"state_id": "channel"})))
        .await;
    assert_eq!(n, 403, "a server has no channel of its own");
    server
        .ok("create", "match", Some(json!({"id": "m1"})))
        .await;
    let added = server
        .ok(
            "add_channels",
            "match",
            Some(json!({"id": "m1", "channel_ids": ["8102", "8101", "8103"]})),
        )
        .await;
    assert_eq!(added["channels"], json!(["8101", "8102", "8103"]));
    let removed = server
        .ok(
            "remove_channels",
            "match",
            Some(json!({"id": "m1", "channel_ids": ["8103"]})),
        )
        .await;
    assert_eq!(removed["channels"], json!(["8101", "8102"]));
    server
        .ok("keepalive", "match", Some(json!({"id": "m1"})))
        .await;
    let too_many: Vec<String> = (0..101).map(|i| format!("{}", 9000 + i)).collect();
    let (n, _) = server
        .refused(
            "add_channels",
            "match",
            Some(json!({"id": "m1", "channel_ids": too_many})),
        )
        .await;
    assert_eq!(n, 400);
    let (n, _) = server
        .refused("keepalive", "match", Some(json!({"id": "nope"})))
        .await;
    assert_eq!(n, 404);

    // A match broadcast reaches every channel's extension pages.
    let mut v1 = ctx.viewer_socket("8101", "u1").await;
    let mut v2 = ctx.viewer_socket("8102", "u2").await;
    let sent = server
        .ok(
            "broadcast",
            "match",
            Some(json!({"match_id": "m1", "topic": "round", "data": {"n": 2}})),
        )
        .await;
    assert_eq!(
        (sent["ok"].clone(), sent["channels"].clone()),
        (json!(true), json!(2))
    );
    for ws in [&mut v1, &mut v2] {
        let f = next_frame(ws, WAIT).await.expect("the match broadcast");
        let env = decode_message(f["message"].as_str().unwrap()).unwrap();
        assert_eq!(env["event"], format!("sandbox:{}:round", ctx.client_id));
        assert_eq!(env["data"]["n"], 2);
    }

    // A channel's own poll of an id blocks a match poll of that id there,
    // and the refused create writes nothing.
    caster_game
        .ok(
            "create",
            "poll",
            Some(json!({"poll_id": "clash", "prompt": "mine", "options": ["x"]})),
        )
        .await;
    let (n, detail) = server
        .refused(
            "create",
            "match_poll",
            Some(
                json!({"id": "m1", "poll": {"poll_id": "clash", "prompt": "?", "options": ["a"]}}),
            ),
        )
        .await;
    assert_eq!(n, 409, "{detail}");
    let mine = caster_game
        .ok("get", "poll", Some(json!({"poll_id": "clash"})))
        .await;
    assert_eq!(mine["poll"]["prompt"], "mine");
    let plain = ctx.token("viewer", "8102", Some("u9")).await;
    assert_eq!(
        vote(ctx, &plain, "clash", 7).await.0,
        200,
        "no part left in 8102"
    );

    // RunMatchPoll: delete, subscribe, create.
    server
        .ok(
            "delete",
            "match_poll",
            Some(json!({"id": "m1", "poll_id": "boss"})),
        )
        .await;
    server
        .ok("subscribe", "match_poll", Some(json!({"topic_id": "m1"})))
        .await;
    let created = server
        .ok(
            "create",
            "match_poll",
            Some(
                json!({"id": "m1", "poll": {"poll_id": "boss", "prompt": "Which?",
                         "options": ["a", "b"], "config": {"endsIn": 30}}}),
            ),
        )
        .await;
    assert_eq!(created["overall"]["status"], "active", "{created}");
    assert_eq!(created["results"]["8101"]["results"], json!([0, 0]));
    let active = server.update("match_poll", WAIT).await.expect("active");
    assert_eq!(active["data"]["match_id"], "m1");
    assert_eq!(active["data"]["poll_id"], "boss");
    // Viewers vote on their own channel, under the poll's rules.
    for (channel, user, value) in [("8101", "u1", 0), ("8102", "u2", 1), ("8102", "u3", 1)] {
        let t = ctx.token("viewer", channel, Some(user)).await;
        let (s, v) = vote(ctx, &t, "boss", value).await;
        assert_eq!(s, 200, "{v}");
    }
    let t = ctx.token("viewer", "8101", Some("u4")).await;
    assert_eq!(vote(ctx, &t, "boss", 5).await.0, 400, "no such option");
    let counted = match_updates_until(&mut server, WAIT, |d| d["overall"]["count"] == 3)
        .await
        .expect("an update with every vote");
    assert_eq!(counted["results"]["8101"]["results"], json!([1, 0]));
    assert_eq!(counted["results"]["8102"]["results"], json!([0, 2]));
    assert_eq!(counted["overall"]["results"], json!([1, 2]));
    assert_eq!(counted["overall"]["status"], "active");

    // Stopped: one `expired`, votes refused in every channel.
    let stopped = server
        .ok(
            "reconfigure",
            "match_poll",
            Some(json!({"id": "m1", "poll_id": "boss", "config": {"endsAt": -1}})),
        )
        .await;
    assert_eq!(stopped["overall"]["status"], "expired");
    let expired = match_updates_until(&mut server, WAIT, |d| d["overall"]["status"] == "expired")
        .await
        .expect("the expired update");
    assert_eq!(expired["overall"]["count"], 3);
    server
        .ok(
            "reconfigure",
            "match_poll",
            Some(json!({"id": "m1", "poll_id": "boss", "config": {"endsAt": -1}})),
        )
        .await;
    assert!(
        match_updates_until(&mut server, QUIET, |d| d["overall"]["status"] == "expired")
            .await
            .is_none(),
        "a second stop sends nothing"
    );
    let t = ctx.token("viewer", "8102", Some("u5")).await;
    assert_eq!(vote(ctx, &t, "boss", 0).await.0, 409, "the poll is over");
    // Deleted: the channels' parts go with it.
    server
        .ok(
            "delete",
            "match_poll",
            Some(json!({"id": "m1", "poll_id": "boss"})),
        )
        .await;
    assert_eq!(
        vote(ctx, &t, "boss", 0).await.0,
        200,
        "a plain REST poll again"
    );
    let (n, _) = server
        .refused(
            "create",
            "match_poll",
            Some(json!({"id": "nope", "poll": {}})),
        )
        .await;
    assert_eq!(n, 400, "a poll with nothing");
    let (n, _) = server
        .refused(
            "create",
            "match_poll",
            Some(json!({"id": "nope", "poll": {"poll_id": "p", "prompt": "?", "options": ["a"]}})),
        )
        .await;
    assert_eq!(n, 404, "no such match");
    let (n, _) = server
        .refused("rename", "match", Some(json!({"id": "m1"})))
        .await;
    assert_eq!(n, 400);
    let (n, _) = server.refused("join", "matchmaking", None).await;
    assert_eq!(n, 501);
}

/// A viewer's purchase as the official client's sandbox `purchase()` posts
/// it (a receipt with a made-up signature: the sandbox does not verify).
fn sandbox_purchase(tx: &str, sku: &str, user: &str) -> Value {
    json!({"transactionId": tx, "userId": user, "displayName": "Buyer", "initiator": "current_user",
           "transactionReceipt": "eyJhbGciOiJIUzI1NiJ9.e30.DK02m0j0HQMKsPeFIrAuVdFh5X8f0hknjEKHAjGt6B0",
           "product": {"sku": sku, "displayName": "Fancy Hat", "cost": {"amount": 100, "type": "bits"}}})
}

/// Bits purchases reach the channel's games at least once: pushed when
/// recorded, sent again to a game that subscribes later, until one
/// validates; recorded once however often it is posted.
async fn purchases(ctx: &Ctx) {
    let (mut game, _) = logged_in_game(ctx, "9101").await;
    game.ok(
        "subscribe",
        "twitchPurchaseBits",
        Some(json!({"sku": "hat"})),
    )
    .await;
    let viewer = ctx.token("viewer", "9101", Some("555")).await;
    let (s, first) = ctx
        .post(
            "bits/transactions",
            &viewer,
            sandbox_purchase("tx-1", "hat", "555"),
        )
        .await;
    assert_eq!(s, 201, "{first}");
    assert_eq!(first["sandbox"], true);
    let pushed = game
        .update("twitchPurchaseBits", WAIT)
        .await
        .expect("the purchase");
    assert_eq!(pushed["data"]["id"], "tx-1");
    assert_eq!(
        (
            pushed["data"]["sku"].clone(),
            pushed["data"]["cost"].clone()
        ),
        (json!("hat"), json!(100))
    );
    assert_eq!(pushed["data"]["muxy_id"], first["muxy_id"]);
    // Posted again: the same answer, nothing pushed again.
    let (s, again) = ctx
        .post(
            "bits/transactions",
            &viewer,
            sandbox_purchase("tx-1", "hat", "555"),
        )
        .await;
    assert_eq!(
        (s, again["muxy_id"].clone()),
        (200, first["muxy_id"].clone())
    );
    assert!(game.update("twitchPurchaseBits", QUIET).await.is_none());
    // A purchase of another SKU does not reach a game subscribed to "hat".
    let (s, _) = ctx
        .post(
            "bits/transactions",
            &viewer,
            sandbox_purchase("tx-2", "cape", "555"),
        )
        .await;
    assert_eq!(s, 201);
    assert!(game.update("twitchPurchaseBits", QUIET).await.is_none());

    // A game that comes later hears every purchase not validated yet.
    let (mut late, _) = logged_in_game(ctx, "9101").await;
    late.ok("subscribe", "twitchPurchaseBits", Some(json!({"sku": "*"})))
        .await;
    let mut seen = Vec::new();
    while let Some(u) = late.update("twitchPurchaseBits", QUIET).await {
        seen.push(u["data"]["id"].as_str().unwrap().to_string());
    }
    seen.sort();
    assert_eq!(seen, ["tx-1", "tx-2"]);
    let open = late
        .ok("get", "transaction", Some(json!({"sku": "hat"})))
        .await;
    assert_eq!(open["transactions"].as_array().unwrap().len(), 1);

    // Validated: no later game receives it; a repeat is fine, a refund not.
    let v = game
        .ok(
            "validate",
            "transaction",
            Some(json!({"transaction_id": "tx-1", "details": "hat given"})),
        )
        .await;
    assert_eq!(v["state"], "validated");
    game.ok(
        "validate",
        "transaction",
        Some(json!({"transaction_id": "tx-1"})),
    )
    .await;
    let (n, _) = game
        .refused(
            "refund",
            "transaction",
            Some(json!({"transaction_id": "tx-1", "user_id": "555"})),
        )
        .await;
    assert_eq!(n, 409);
    let (mut third, _) = logged_in_game(ctx, "9101").await;
    third
        .ok(
            "subscribe",
            "twitchPurchaseBits",
            Some(json!({"sku": "hat"})),
        )
        .await;
    assert!(
        third.update("twitchPurchaseBits", QUIET).await.is_none(),
        "validated: not again"
    );
    // Refunded by SKU and user; another channel's game reaches nothing.
    let r = third
        .ok(
            "refund",
            "transaction",
            Some(json!({"sku": "cape", "user_id": "555"})),
        )
        .await;
    assert_eq!(r["state"], "refunded");
    let (mut elsewhere, _) = logged_in_game(ctx, "9102").await;
    let (n, _) = elsewhere
        .refused(
            "validate",
            "transaction",
            Some(json!({"transaction_id": "tx-2"})),
        )
        .await;
    assert_eq!(n, 404);
    let (n, _) = elsewhere
        .refused("subscribe", "twitchPurchaseBits", Some(json!({})))
        .await;
    assert_eq!(n, 400, "no sku");
    // The books: the broadcaster lists the channel's purchases and states.
    let caster = ctx.token("broadcaster", "9101", Some("9101")).await;
    let (s, listed) = send(
        M::GET,
        &ctx.url("bits/transactions"),
        Some(&ctx.auth(&caster)),
        None,
    )
    .await;
    assert_eq!(s, 200, "{listed}");
    let states: Vec<(String, String)> = listed["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().into(),
                t["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        states.contains(&("tx-1".into(), "validated".into())),
        "{states:?}"
    );
    assert!(
        states.contains(&("tx-2".into(), "refunded".into())),
        "{states:?}"
    );
}

async fn everything(store: Option<&str>, extra: &[&str]) {
    let ctx = ctx_on(store, extra);
    a_games_session(&ctx).await;
    reconnect_and_revoke(&ctx).await;
    channels_are_apart(&ctx).await;
    polls(&ctx).await;
    matches(&ctx).await;
    purchases(&ctx).await;
}

#[tokio::test]
async fn gamelink_on_the_embedded_store() {
    everything(None, &[]).await;
}

#[tokio::test]
async fn gamelink_on_dynamodb_local() {
    let Some(endpoint) = dynamodb() else { return };
    everything(Some(&endpoint), &[]).await;
}

/// The AWS path: every push is a job on DynamoDB Local's stream, delivered
/// by the fan-out worker through the Management API (a channel's state
/// update reaches its viewers and its games in one job).
#[tokio::test]
async fn gamelink_on_the_lambda_topology() {
    let Some(endpoint) = dynamodb() else { return };
    everything(Some(&endpoint), &["--fanout", "stream"]).await;
}

/// The query form of the URL works too (API Gateway stages have no free
/// path): `ws://host/ws?client_id=…`, no token.
#[tokio::test]
async fn the_query_form_of_the_url() {
    let ctx = Ctx::start(&[]);
    let url = format!(
        "{}/ws?client_id={}",
        ctx.server.base.replacen("http://", "ws://", 1),
        ctx.client_id
    );
    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut game = Game {
        ws,
        next_id: 1,
        updates: VecDeque::new(),
    };
    let pin = game_pin(&ctx, "6006").await;
    let login = game.login_with_pin(&ctx, &pin).await;
    assert_eq!(login["twitch_id"], "6006");
    // An unknown extension is refused at the handshake.
    let bad = format!(
        "{}/0.2.0/nobody",
        ctx.server.base.replacen("http://", "ws://", 1)
    );
    match tokio_tungstenite::connect_async(bad).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status().as_u16(), 401)
        }
        other => panic!("expected a 401, got {:?}", other.map(|_| ())),
    }
}

/// A connection that does not authenticate within 30 s is closed (1008),
/// and held nothing meanwhile.
#[tokio::test]
async fn an_unauthenticated_game_is_closed_after_30_s() {
    let ctx = Ctx::start(&[]);
    let mut game = Game::connect(&ctx).await;
    let closed = tokio::time::timeout(Duration::from_secs(40), async {
        loop {
            match game.ws.next().await {
                Some(Ok(Message::Close(Some(f)))) => return Some(u16::from(f.code)),
                Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await
    .expect("closed within 40 s");
    assert_eq!(closed, Some(1008));
}
