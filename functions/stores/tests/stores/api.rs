//! The stores function through its router, as the official client calls it.

use axum::Router;
use axum::http::{Method, StatusCode};
use medkit::auth::Role;
use medkit::clock::now_secs;
use medkit::delivery::local::LocalHub;
use medkit::env::Env;
use medkit::realtime::event::Audience;
use medkit::store::dynamo::{DynamoStore, Tables};
use medkit::store::embedded::EmbeddedStore;
use medkit::testing::{self, bearer, call, reason, token};
use serde_json::{Value, json};

const GET: Method = Method::GET;
const POST: Method = Method::POST;
const PATCH: Method = Method::PATCH;

fn setup() -> (Router, LocalHub) {
    setup_env(Env::Sandbox)
}

fn setup_env(env: Env) -> (Router, LocalHub) {
    let (app, hub) = testing::app(EmbeddedStore::in_memory(), env);
    (medkit_stores::router(app), hub)
}

fn viewer() -> String {
    bearer(&token(Role::Viewer, "100", Some("7")))
}
fn viewer2() -> String {
    bearer(&token(Role::Viewer, "100", Some("8")))
}
fn broadcaster() -> String {
    bearer(&token(Role::Broadcaster, "100", Some("100")))
}
fn other_broadcaster() -> String {
    bearer(&token(Role::Broadcaster, "200", Some("200")))
}
fn admin() -> String {
    bearer(&token(Role::Admin, "100", None))
}

async fn get(r: &Router, uri: &str, auth: &str) -> Value {
    let (s, v) = call(r, GET, uri, Some(auth), None).await;
    assert_eq!(s, StatusCode::OK, "{uri}: {v}");
    v
}

#[tokio::test]
async fn channel_state_round_trip_with_both_patch_kinds() {
    let (r, hub) = setup();
    let mut events = hub.subscribe();
    assert_eq!(get(&r, "/v1/e/channel_state", &viewer()).await, json!({}));
    let (s, v) = call(
        &r,
        POST,
        "/v1/e/channel_state",
        Some(&broadcaster()),
        Some(r#"{"round":1,"teams":{"red":1,"blue":2}}"#),
    )
    .await;
    assert_eq!(
        (s, v.clone()),
        (
            StatusCode::OK,
            json!({"round": 1, "teams": {"red": 1, "blue": 2}})
        )
    );
    let e = events.recv().await.unwrap();
    assert_eq!(e.name, "channel_state_update");
    assert_eq!(
        e.audience,
        Audience::Channel(medkit::ids::ChannelId::parse("100").unwrap())
    );
    assert_eq!(e.data, v);
    // RFC 7386 merge patch: null deletes, objects merge.
    let (s, v) = call(
        &r,
        PATCH,
        "/v1/e/channel_state",
        Some(&broadcaster()),
        Some(r#"{"teams":{"red":null,"green":3}}"#),
    )
    .await;
    assert_eq!(
        (s, v),
        (
            StatusCode::OK,
            json!({"round": 1, "teams": {"blue": 2, "green": 3}})
        )
    );
    // RFC 6902 JSON Patch.
    let (s, v) = call(&r, PATCH, "/v1/e/channel_state", Some(&broadcaster()),
        Some(r#"[{"op":"test","path":"/round","value":1},{"op":"replace","path":"/round","value":2}]"#)).await;
    assert_eq!((s, v["round"].clone()), (StatusCode::OK, json!(2)));
    assert_eq!(
        events.recv().await.unwrap().data["teams"],
        json!({"blue": 2, "green": 3})
    );
    // Viewers of the channel read it; another channel has its own.
    assert_eq!(get(&r, "/v1/e/channel_state", &viewer()).await["round"], 2);
    assert_eq!(
        get(&r, "/v1/e/channel_state", &other_broadcaster()).await,
        json!({})
    );
}

#[tokio::test]
async fn roles_are_enforced_and_refusals_change_nothing() {
    let (r, _) = setup();
    call(
        &r,
        POST,
        "/v1/e/channel_state",
        Some(&broadcaster()),
        Some(r#"{"v":1}"#),
    )
    .await;
    let (s, b) = call(
        &r,
        POST,
        "/v1/e/channel_state",
        Some(&viewer()),
        Some(r#"{"v":"viewer"}"#),
    )
    .await;
    reason(s, &b, StatusCode::FORBIDDEN);
    let (s, b) = call(
        &r,
        PATCH,
        "/v1/e/channel_state",
        Some(&viewer()),
        Some(r#"{"v":"viewer"}"#),
    )
    .await;
    reason(s, &b, StatusCode::FORBIDDEN);
    // A broadcaster's token only reaches their own channel.
    call(
        &r,
        POST,
        "/v1/e/channel_state",
        Some(&other_broadcaster()),
        Some(r#"{"v":"other"}"#),
    )
    .await;
    assert_eq!(
        get(&r, "/v1/e/channel_state", &viewer()).await,
        json!({"v": 1})
    );
    for uri in [
        "/v1/e/extension_state",
        "/v1/e/config/extension",
        "/v1/e/extension_hidden_state",
    ] {
        let (s, b) = call(&r, POST, uri, Some(&broadcaster()), Some(r#"{"x":1}"#)).await;
        reason(s, &b, StatusCode::FORBIDDEN);
    }
    let (s, b) = call(
        &r,
        GET,
        "/v1/e/extension_hidden_state",
        Some(&viewer()),
        None,
    )
    .await;
    reason(s, &b, StatusCode::FORBIDDEN);
    // Admins may.
    call(
        &r,
        POST,
        "/v1/e/extension_hidden_state",
        Some(&admin()),
        Some(r#"{"secret":1}"#),
    )
    .await;
    assert_eq!(
        get(&r, "/v1/e/extension_hidden_state", &admin()).await,
        json!({"secret": 1})
    );
    call(
        &r,
        POST,
        "/v1/e/extension_state",
        Some(&admin()),
        Some(r#"{"x":1}"#),
    )
    .await;
    assert_eq!(
        get(&r, "/v1/e/extension_state", &viewer()).await,
        json!({"x": 1})
    );
    assert_eq!(
        get(&r, "/v1/e/extension_state", &broadcaster()).await,
        json!({"x": 1})
    );
}

#[tokio::test]
async fn viewer_stores_are_per_viewer() {
    let (r, _) = setup();
    call(
        &r,
        POST,
        "/v1/e/viewer_state",
        Some(&viewer()),
        Some(r#"{"me":7}"#),
    )
    .await;
    call(
        &r,
        PATCH,
        "/v1/e/extension_viewer_state",
        Some(&viewer()),
        Some(r#"{"xp":10}"#),
    )
    .await;
    assert_eq!(
        get(&r, "/v1/e/viewer_state", &viewer()).await,
        json!({"me": 7})
    );
    assert_eq!(get(&r, "/v1/e/viewer_state", &viewer2()).await, json!({}));
    assert_eq!(
        get(&r, "/v1/e/extension_viewer_state", &viewer2()).await,
        json!({})
    );
    // extension_viewer_state follows the viewer across channels.
    let elsewhere = bearer(&token(Role::Viewer, "999", Some("7")));
    assert_eq!(
        get(&r, "/v1/e/extension_viewer_state", &elsewhere).await,
        json!({"xp": 10})
    );
    assert_eq!(get(&r, "/v1/e/viewer_state", &elsewhere).await, json!({}));
    let all = get(&r, "/v1/e/all_state", &viewer()).await;
    assert_eq!(
        all,
        json!({"extension": {}, "channel": {}, "viewer": {"me": 7}, "extension_viewer": {"xp": 10}})
    );
    // An anonymous viewer is identified by the opaque id.
    let anon = bearer(&token(Role::Viewer, "100", None));
    call(
        &r,
        POST,
        "/v1/e/viewer_state",
        Some(&anon),
        Some(r#"{"anon":true}"#),
    )
    .await;
    assert_eq!(
        get(&r, "/v1/e/viewer_state", &anon).await,
        json!({"anon": true})
    );
}

#[tokio::test]
async fn admin_multi_user_forms() {
    let (r, _) = setup();
    call(
        &r,
        POST,
        "/v1/e/extension_viewer_state",
        Some(&viewer()),
        Some(r#"{"xp":1}"#),
    )
    .await;
    let got = get(&r, "/v1/e/extension_viewer_state?user_ids=7,8,9", &admin()).await;
    assert_eq!(got, json!({"7": {"xp": 1}}));
    let (s, b) = call(
        &r,
        GET,
        "/v1/e/extension_viewer_state?user_ids=7,8",
        Some(&viewer()),
        None,
    )
    .await;
    reason(s, &b, StatusCode::FORBIDDEN);
    let ids: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    let (s, b) = call(
        &r,
        GET,
        &format!("/v1/e/extension_viewer_state?user_ids={}", ids.join(",")),
        Some(&admin()),
        None,
    )
    .await;
    assert_eq!(
        reason(s, &b, StatusCode::BAD_REQUEST),
        "Too many ids specified"
    );
    // Map PATCH: each user's patch applied to that user.
    let (s, v) = call(
        &r,
        PATCH,
        "/v1/e/extension_viewer_state",
        Some(&admin()),
        Some(r#"{"7":{"xp":2},"8":[{"op":"add","path":"/badge","value":"gold"}]}"#),
    )
    .await;
    assert_eq!(
        (s, v),
        (
            StatusCode::OK,
            json!({"7": {"xp": 2}, "8": {"badge": "gold"}})
        )
    );
    assert_eq!(
        get(&r, "/v1/e/extension_viewer_state", &viewer2()).await,
        json!({"badge": "gold"})
    );
    // One bad entry: 400 and nobody changes.
    let (s, b) = call(
        &r,
        PATCH,
        "/v1/e/extension_viewer_state",
        Some(&admin()),
        Some(r#"{"7":{"xp":99},"8":[{"op":"test","path":"/badge","value":"silver"}]}"#),
    )
    .await;
    assert!(reason(s, &b, StatusCode::BAD_REQUEST).starts_with("8:"));
    assert_eq!(
        get(&r, "/v1/e/extension_viewer_state", &viewer()).await,
        json!({"xp": 2})
    );
    // Channel config map PATCH.
    let (s, _) = call(
        &r,
        PATCH,
        "/v1/e/config/channel",
        Some(&admin()),
        Some(r#"{"100":{"theme":"dark"},"200":{"theme":"light"}}"#),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        get(&r, "/v1/e/config/channel", &viewer()).await,
        json!({"theme": "dark"})
    );
    assert_eq!(
        get(&r, "/v1/e/config/channel", &other_broadcaster()).await,
        json!({"theme": "light"})
    );
    let (s, b) = call(
        &r,
        PATCH,
        "/v1/e/config/channel",
        Some(&admin()),
        Some(r#"{"bad|id":{"x":1}}"#),
    )
    .await;
    reason(s, &b, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn config_endpoints() {
    let (r, _) = setup();
    call(
        &r,
        POST,
        "/v1/e/config/channel",
        Some(&broadcaster()),
        Some(r#"{"color":"red"}"#),
    )
    .await;
    call(
        &r,
        POST,
        "/v1/e/config/extension",
        Some(&admin()),
        Some(r#"{"version":3}"#),
    )
    .await;
    let (s, b) = call(
        &r,
        POST,
        "/v1/e/config/channel",
        Some(&viewer()),
        Some(r#"{"color":"x"}"#),
    )
    .await;
    reason(s, &b, StatusCode::FORBIDDEN);
    assert_eq!(
        get(&r, "/v1/e/config", &viewer()).await,
        json!({"channel": {"color": "red"}, "extension": {"version": 3}})
    );
    let (s, v) = call(
        &r,
        PATCH,
        "/v1/e/config/channel",
        Some(&broadcaster()),
        Some(r#"{"size":2}"#),
    )
    .await;
    assert_eq!((s, v), (StatusCode::OK, json!({"color": "red", "size": 2})));
}

#[tokio::test]
async fn json_store() {
    let (r, hub) = setup();
    let mut events = hub.subscribe();
    let (s, v) = call(
        &r,
        POST,
        "/v1/e/json_store?id=scores",
        Some(&broadcaster()),
        Some(r#"[1,2,3]"#),
    )
    .await;
    assert_eq!((s, v), (StatusCode::OK, json!([1, 2, 3])));
    let e = events.recv().await.unwrap();
    assert_eq!(
        (e.name.as_str(), e.data),
        (
            "json_store_update:scores",
            json!({"id": "scores", "value": [1, 2, 3]})
        )
    );
    assert_eq!(
        get(&r, "/v1/e/json_store?id=scores", &viewer()).await,
        json!([1, 2, 3])
    );
    assert_eq!(
        get(&r, "/v1/e/json_store?id=scores", &other_broadcaster()).await,
        json!({})
    );
    assert_eq!(
        get(&r, "/v1/e/json_store?id=missing", &viewer()).await,
        json!({})
    );
    // Limits and roles; refusals change nothing.
    let big = format!(r#"{{"s":"{}"}}"#, "x".repeat(2048));
    let (s, b) = call(
        &r,
        POST,
        "/v1/e/json_store?id=scores",
        Some(&broadcaster()),
        Some(&big),
    )
    .await;
    reason(s, &b, StatusCode::PAYLOAD_TOO_LARGE);
    let (s, b) = call(
        &r,
        POST,
        "/v1/e/json_store?id=scores",
        Some(&viewer()),
        Some("{}"),
    )
    .await;
    reason(s, &b, StatusCode::FORBIDDEN);
    let (s, b) = call(
        &r,
        POST,
        "/v1/e/json_store",
        Some(&broadcaster()),
        Some("{}"),
    )
    .await;
    reason(s, &b, StatusCode::BAD_REQUEST);
    assert_eq!(
        get(&r, "/v1/e/json_store?id=scores", &viewer()).await,
        json!([1, 2, 3])
    );
    // global… keys are extension-wide and written by the extension only.
    let (s, b) = call(
        &r,
        POST,
        "/v1/e/json_store?id=global-top",
        Some(&broadcaster()),
        Some("{}"),
    )
    .await;
    reason(s, &b, StatusCode::FORBIDDEN);
    call(
        &r,
        POST,
        "/v1/e/json_store?id=global-top",
        Some(&admin()),
        Some(r#"{"top":"everyone"}"#),
    )
    .await;
    assert_eq!(
        get(&r, "/v1/e/json_store?id=global-top", &other_broadcaster()).await,
        json!({"top": "everyone"})
    );
}

#[tokio::test]
async fn bad_bodies_are_400_or_413_and_change_nothing() {
    let (r, _) = setup();
    call(
        &r,
        POST,
        "/v1/e/channel_state",
        Some(&broadcaster()),
        Some(r#"{"keep":true}"#),
    )
    .await;
    let cases: Vec<(Method, String, StatusCode)> = vec![
        (POST, "{not json".into(), StatusCode::BAD_REQUEST),
        (POST, "".into(), StatusCode::BAD_REQUEST),
        (POST, "[1,2]".into(), StatusCode::BAD_REQUEST),
        (POST, "\"text\"".into(), StatusCode::BAD_REQUEST),
        (PATCH, "42".into(), StatusCode::BAD_REQUEST),
        (
            PATCH,
            r#"[{"op":"jump","path":"/x"}]"#.into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            PATCH,
            r#"[{"op":"remove","path":"/nope/deeper"}]"#.into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            PATCH,
            r#"[{"op":"test","path":"/keep","value":false}]"#.into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            PATCH,
            r#"[{"op":"replace","path":"","value":[1]}]"#.into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            POST,
            format!(r#"{{"s":"{}"}}"#, "x".repeat(500 * 1024)),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            PATCH,
            format!(r#"{{"s":"{}"}}"#, "x".repeat(500 * 1024)),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            POST,
            format!(r#"{{"s":"{}"}}"#, "x".repeat(1100 * 1024)),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (method, body, expected) in cases {
        let (s, b) = call(
            &r,
            method.clone(),
            "/v1/e/channel_state",
            Some(&broadcaster()),
            Some(&body),
        )
        .await;
        reason(s, &b, expected);
    }
    assert_eq!(
        get(&r, "/v1/e/channel_state", &viewer()).await,
        json!({"keep": true})
    );
}

#[tokio::test]
async fn unknown_endpoints_and_methods_answer_json() {
    let (r, _) = setup();
    let (s, b) = call(&r, GET, "/v1/e/no_such_thing", Some(&viewer()), None).await;
    reason(s, &b, StatusCode::NOT_FOUND);
    let (s, b) = call(
        &r,
        Method::PUT,
        "/v1/e/channel_state",
        Some(&viewer()),
        None,
    )
    .await;
    reason(s, &b, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn cors_preflight_is_answered() {
    let (r, _) = setup();
    let req = axum::http::Request::builder()
        .method(Method::OPTIONS)
        .uri("/v1/e/channel_state")
        .header("origin", "https://ext.example")
        .header("access-control-request-method", "PATCH")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .body(axum::body::Body::empty())
        .unwrap();
    let res = tower::ServiceExt::oneshot(r, req).await.unwrap();
    assert!(res.status().is_success());
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("PATCH")
    );
    assert!(
        h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_lowercase()
            .contains("authorization")
    );
}

/// A token signed by hand: `alg` (HS256 or HS512) in its header, an HMAC of
/// that kind under `key`, whatever claims (medkit's own signing knows only
/// HS256 under a registered secret).
fn forged(alg: &str, key: &[u8], claims: &impl serde::Serialize) -> String {
    use base64::Engine;
    use hmac::{KeyInit, Mac};
    let signed = format!(
        "{}.{}",
        b64(&format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#)),
        b64(&serde_json::to_string(claims).unwrap())
    );
    let sig = match alg {
        "HS256" => {
            let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
            m.update(signed.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
        "HS512" => {
            let mut m = hmac::Hmac::<sha2::Sha512>::new_from_slice(key).unwrap();
            m.update(signed.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
        other => panic!("no HMAC for {other}"),
    };
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig);
    format!("{signed}.{sig}")
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

/// Every way a token can be wrong: 401 with a reason, and the write it
/// carried does not happen.
#[tokio::test]
async fn token_verification_failures() {
    let (r, _) = setup();
    let good = medkit::auth::claims_for(Role::Broadcaster, "100", Some("100"), 3600);
    let mut expired = good.clone();
    expired.exp = now_secs() - 3600;
    let none_token = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&serde_json::to_string(&good).unwrap())
    );
    let no_exp = {
        let mut v = serde_json::to_value(&good).unwrap();
        v.as_object_mut().unwrap().remove("exp");
        forged("HS256", testing::SECRET, &v)
    };
    let mut other_ext = good.clone();
    other_ext.client_id = Some("someoneelse".into());
    let mut no_role = good.clone();
    no_role.role = None;
    let mut bad_role = good.clone();
    bad_role.role = Some("superuser".into());
    let valid = testing::sign(good.clone());
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing header", None),
        ("bearer scheme", Some(format!("Bearer {valid}"))),
        ("no token", Some(testing::CLIENT_ID.to_string())),
        ("unknown client id", Some(format!("nosuchclient {valid}"))),
        (
            "bad signature",
            Some(bearer(&forged("HS256", b"wrong secret", &good))),
        ),
        ("alg none", Some(bearer(&none_token))),
        (
            "HS512",
            Some(bearer(&forged("HS512", testing::SECRET, &good))),
        ),
        ("expired", Some(bearer(&testing::sign(expired)))),
        ("no exp", Some(bearer(&no_exp))),
        (
            "other extension's token",
            Some(bearer(&forged("HS256", testing::SECRET, &other_ext))),
        ),
        ("no role", Some(bearer(&testing::sign(no_role)))),
        ("unknown role", Some(bearer(&testing::sign(bad_role)))),
        ("garbage", Some(bearer("not.a.jwt"))),
    ];
    for (what, auth) in cases {
        let (s, b) = call(
            &r,
            POST,
            "/v1/e/channel_state",
            auth.as_deref(),
            Some(r#"{"hacked":true}"#),
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{what}: {b}");
        assert!(
            b["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{what}"
        );
    }
    assert_eq!(get(&r, "/v1/e/channel_state", &viewer()).await, json!({}));
    // The unknown extension case says so, as the contract words it.
    let (_, b) = call(
        &r,
        GET,
        "/v1/e/channel_state",
        Some(&format!("nosuchclient {valid}")),
        None,
    )
    .await;
    assert_eq!(b["reason"], "unknown extension");
}

#[tokio::test]
async fn sandbox_tokens_are_refused_in_production() {
    let (r, _) = setup_env(Env::Production);
    let mut claims = medkit::auth::claims_for(Role::Broadcaster, "100", Some("100"), 3600);
    claims.allowed_stage = Some("sandbox".into());
    let (s, b) = call(
        &r,
        POST,
        "/v1/e/channel_state",
        Some(&bearer(&testing::sign(claims))),
        Some("{}"),
    )
    .await;
    reason(s, &b, StatusCode::UNAUTHORIZED);
    // Twitch-issued tokens (no allowed_stage) work in production.
    let (s, _) = call(
        &r,
        POST,
        "/v1/e/channel_state",
        Some(&broadcaster()),
        Some("{}"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn unreachable_store_is_503_without_internals() {
    // Nothing listens on port 1: every call fails to connect.
    let store = DynamoStore::connect("http://127.0.0.1:1", Tables::with_prefix("x-"));
    let (app, _) = testing::app(store, Env::Sandbox);
    let r = medkit_stores::router(app);
    let started = std::time::Instant::now();
    let (s, b) = call(&r, GET, "/v1/e/channel_state", Some(&viewer()), None).await;
    let why = reason(s, &b, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        !why.to_lowercase().contains("dispatch") && !why.contains("127.0.0.1"),
        "{why}"
    );
    assert!(started.elapsed().as_secs() < 15, "answered, not hung");
    let (s, b) = call(
        &r,
        PATCH,
        "/v1/e/channel_state",
        Some(&broadcaster()),
        Some("{}"),
    )
    .await;
    reason(s, &b, StatusCode::SERVICE_UNAVAILABLE);
}

/// DynamoDB round trips per request: every GET 1, POST 1, PATCH 2.
#[tokio::test]
async fn dynamodb_round_trips_per_request() {
    let Some((store, rt)) = testing::dynamo_store("dynamodb_round_trips_per_request").await else {
        return;
    };
    let (app, _) = testing::app(store, Env::Sandbox);
    let r = medkit_stores::router(app);
    let cases: Vec<(Method, &str, String, Option<&str>, usize)> = vec![
        (
            POST,
            "/v1/e/channel_state",
            broadcaster(),
            Some(r#"{"a":1}"#),
            1,
        ),
        (GET, "/v1/e/channel_state", viewer(), None, 1),
        (
            PATCH,
            "/v1/e/channel_state",
            broadcaster(),
            Some(r#"{"b":2}"#),
            2,
        ),
        (
            PATCH,
            "/v1/e/channel_state",
            broadcaster(),
            Some(r#"[{"op":"add","path":"/c","value":3}]"#),
            2,
        ),
        (GET, "/v1/e/all_state", viewer(), None, 1),
        (GET, "/v1/e/config", viewer(), None, 1),
        (POST, "/v1/e/viewer_state", viewer(), Some(r#"{"v":1}"#), 1),
        (GET, "/v1/e/viewer_state", viewer(), None, 1),
        (
            POST,
            "/v1/e/json_store?id=k",
            broadcaster(),
            Some(r#"{"v":1}"#),
            1,
        ),
        (GET, "/v1/e/json_store?id=k", viewer(), None, 1),
        (
            GET,
            "/v1/e/extension_viewer_state?user_ids=1,2,3",
            admin(),
            None,
            1,
        ),
    ];
    for (method, uri, auth, body, expected) in cases {
        rt.reset();
        let (s, v) = call(&r, method.clone(), uri, Some(&auth), body).await;
        assert_eq!(s, StatusCode::OK, "{method} {uri}: {v}");
        println!("round trips: {method} {uri} = {}", rt.get());
        assert_eq!(rt.get(), expected, "{method} {uri}");
    }
    assert_eq!(
        get(&r, "/v1/e/channel_state", &viewer()).await,
        json!({"a": 1, "b": 2, "c": 3})
    );
}

/// An admin map PATCH is all or nothing, even when a concurrent writer makes
/// one of its patches fail after the others were checked: whenever the map
/// PATCH is refused, none of its documents changed.
async fn map_patches_racing_a_writer_are_all_or_nothing(r: Router) {
    let (mut applied, mut refused) = (0, 0);
    for round in 0..60 {
        let reset = format!(r#"{{"7":{{"n":{round},"v":0}},"8":{{"v":0}}}}"#);
        let (s, _) = call(
            &r,
            PATCH,
            "/v1/e/extension_viewer_state",
            Some(&admin()),
            Some(&reset),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        // Viewer 7's patch always applies; viewer 8's needs /v to still be 0.
        let map = r#"{"7":{"v":1},"8":[{"op":"test","path":"/v","value":0},{"op":"replace","path":"/v","value":1}]}"#;
        let racer = r#"{"8":[{"op":"replace","path":"/v","value":5}]}"#;
        let auth = admin();
        let ((s, _), _) = tokio::join!(
            call(
                &r,
                PATCH,
                "/v1/e/extension_viewer_state",
                Some(&auth),
                Some(map)
            ),
            call(
                &r,
                PATCH,
                "/v1/e/extension_viewer_state",
                Some(&auth),
                Some(racer)
            ),
        );
        let got = get(&r, "/v1/e/extension_viewer_state?user_ids=7", &admin()).await;
        if s == StatusCode::OK {
            applied += 1;
            assert_eq!(got["7"]["v"], 1, "round {round}: applied, so both changed");
        } else {
            refused += 1;
            assert_eq!(
                got["7"]["v"], 0,
                "round {round}: refused ({s}) but viewer 7 changed"
            );
        }
    }
    println!("map PATCH racing a writer: {applied} applied, {refused} refused, none partly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn map_patches_are_all_or_nothing_embedded() {
    let (r, _) = setup();
    map_patches_racing_a_writer_are_all_or_nothing(r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn map_patches_are_all_or_nothing_dynamodb() {
    let Some((store, _)) = testing::dynamo_store("stores map_patches_are_all_or_nothing").await
    else {
        return;
    };
    let (app, _) = testing::app(store, Env::Sandbox);
    map_patches_racing_a_writer_are_all_or_nothing(medkit_stores::router(app)).await;
}

/// A map PATCH takes at most 100 ids (one atomic write); more is refused
/// whole.
#[tokio::test]
async fn a_map_patch_over_100_ids_is_refused_whole() {
    let (r, _) = setup();
    let body: serde_json::Map<String, Value> = (0..101)
        .map(|i| (format!("u{i}"), json!({"n": i})))
        .collect();
    let body = Value::Object(body).to_string();
    let (s, v) = call(
        &r,
        PATCH,
        "/v1/e/extension_viewer_state",
        Some(&admin()),
        Some(&body),
    )
    .await;
    assert_eq!(
        reason(s, &v, StatusCode::BAD_REQUEST),
        "Too many ids specified (at most 100 per PATCH)"
    );
    let got = get(
        &r,
        "/v1/e/extension_viewer_state?user_ids=u0,u100",
        &admin(),
    )
    .await;
    assert_eq!(got, json!({}));
}
