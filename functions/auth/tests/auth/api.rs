//! The auth function through its router: sandbox tokens, user info, the PIN
//! flow and user paging.

use axum::Router;
use axum::http::{Method, StatusCode};
use base64::Engine;
use medkit::auth::{self, Role};
use medkit::env::Env;
use medkit::store::embedded::EmbeddedStore;
use medkit::testing::{self, bearer, call, reason, token};
use serde_json::{Value, json};

const GET: Method = Method::GET;
const POST: Method = Method::POST;

fn setup(env: Env) -> Router {
    let (app, _) = testing::app(EmbeddedStore::in_memory(), env);
    medkit_auth::router(app)
}

/// Auth and stores together, as the dev server and a deployment route them.
fn both(env: Env) -> Router {
    let (app, _) = testing::app(EmbeddedStore::in_memory(), env);
    let routes = medkit_auth::routes().merge(medkit_stores::routes());
    medkit::http::finish(routes.with_state(app))
}

fn payload(token: &str) -> Value {
    let seg = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(seg)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn authtoken_mints_client_safe_sandbox_tokens() {
    let r = setup(Env::Sandbox);
    for i in 0..40 {
        let body = json!({"app_id": testing::CLIENT_ID, "channel_id": "100", "user_id": format!("{}", 1000 + i * 7919)});
        let (s, v) = call(
            &r,
            POST,
            "/v1/e/authtoken?role=viewer",
            None,
            Some(&body.to_string()),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let t = v["token"].as_str().unwrap();
        // The official client decodes the payload with plain atob: no '-' or '_'.
        assert!(!t.split('.').nth(1).unwrap().contains(['-', '_']), "{t}");
        let claims = payload(t);
        assert_eq!(claims["allowed_stage"], "sandbox");
        assert_eq!(claims["role"], "viewer");
        assert_eq!(claims["channel_id"], "100");
        assert_eq!(claims["iss"], "muxy");
        let ttl = claims["exp"].as_i64().unwrap() - medkit::clock::now_secs();
        assert!((1700..=1800).contains(&ttl), "about 30 minutes: {ttl}");
        // The server accepts what it minted.
        let caller = auth::verify(&testing::registry(), Env::Sandbox, Some(&bearer(t))).unwrap();
        assert_eq!(
            caller.user_id.unwrap().as_str(),
            body["user_id"].as_str().unwrap()
        );
    }
    // extension_id and numeric ids are accepted; the role may come in the body; admin too.
    let (s, v) = call(
        &r,
        POST,
        "/v1/e/authtoken",
        None,
        Some(
            &json!({"extension_id": testing::CLIENT_ID, "channel_id": 100, "role": "admin"})
                .to_string(),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(payload(v["token"].as_str().unwrap())["role"], "admin");
}

#[tokio::test]
async fn authtoken_bad_input() {
    let r = setup(Env::Sandbox);
    let (s, b) = call(
        &r,
        POST,
        "/v1/e/authtoken",
        None,
        Some(r#"{"app_id":"nope","channel_id":"1"}"#),
    )
    .await;
    assert_eq!(
        reason(s, &b, StatusCode::BAD_REQUEST),
        "No such extension found"
    );
    for body in [
        r#"{"channel_id":"1"}"#.to_string(),
        format!(r#"{{"app_id":"{}"}}"#, testing::CLIENT_ID),
        format!(
            r#"{{"app_id":"{}","channel_id":"1","role":"root"}}"#,
            testing::CLIENT_ID
        ),
        format!(
            r#"{{"app_id":"{}","channel_id":"a|b"}}"#,
            testing::CLIENT_ID
        ),
        "[]".to_string(),
        "{oops".to_string(),
    ] {
        let (s, b) = call(&r, POST, "/v1/e/authtoken", None, Some(&body)).await;
        reason(s, &b, StatusCode::BAD_REQUEST);
    }
    // Production has no authtoken, and refuses sandbox tokens.
    let prod = setup(Env::Production);
    let body = json!({"app_id": testing::CLIENT_ID, "channel_id": "1"}).to_string();
    let (s, b) = call(&prod, POST, "/v1/e/authtoken?role=admin", None, Some(&body)).await;
    reason(s, &b, StatusCode::NOT_FOUND);
    let (_, v) = call(&r, POST, "/v1/e/authtoken?role=admin", None, Some(&body)).await;
    let sandbox = bearer(v["token"].as_str().unwrap());
    let (s, b) = call(&prod, GET, "/v1/e/user_info", Some(&sandbox), None).await;
    reason(s, &b, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn user_info_answers_and_records_shared_identities() {
    let r = setup(Env::Sandbox);
    let viewer = bearer(&token(Role::Viewer, "100", Some("4242")));
    let req = axum::http::Request::get("/v1/e/user_info")
        .header("authorization", &viewer)
        .header("x-forwarded-for", "198.51.100.23, 10.0.0.1")
        .body(axum::body::Body::empty())
        .unwrap();
    let res = tower::ServiceExt::oneshot(r.clone(), req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let bytes = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["ip_address"], "198.51.100.0");
    assert_eq!(v["registered"], true);
    assert!((v["server_time"].as_i64().unwrap() - medkit::clock::now_ms()).abs() < 5000);
    assert_eq!(v["visualization_id"].as_str().unwrap().len(), 16);
    let anon = bearer(&token(Role::Viewer, "100", None));
    let (s, v) = call(&r, GET, "/v1/e/user_info", Some(&anon), None).await;
    assert_eq!((s, v["registered"].clone()), (StatusCode::OK, json!(false)));
    let admin = bearer(&token(Role::Admin, "100", None));
    let (_, v) = call(&r, GET, "/v1/e/user_ids", Some(&admin), None).await;
    assert_eq!(v, json!({"next": "0", "results": [{"twitch_id": "4242"}]}));
}

#[tokio::test]
async fn user_ids_pages_by_cursor() {
    let (app, _) = testing::app(EmbeddedStore::in_memory(), Env::Sandbox);
    let client = medkit::ids::ClientId::parse(testing::CLIENT_ID).unwrap();
    for i in 0..2100 {
        let u = medkit::ids::UserId::parse(format!("{i:06}")).unwrap();
        medkit::store::AuthStore::remember_user(&app.store, &client, &u, 3600)
            .await
            .unwrap();
    }
    let r = medkit_auth::router(app);
    let admin = bearer(&token(Role::Admin, "100", None));
    let mut seen = Vec::new();
    let mut cursor = String::new();
    for page in 0.. {
        assert!(page < 5, "paging terminates");
        let uri = if cursor.is_empty() {
            "/v1/e/user_ids".to_string()
        } else {
            format!("/v1/e/user_ids?cursor={cursor}")
        };
        let (s, v) = call(&r, GET, &uri, Some(&admin), None).await;
        assert_eq!(s, StatusCode::OK);
        let results = v["results"].as_array().unwrap();
        assert!(results.len() <= 1000);
        seen.extend(
            results
                .iter()
                .map(|x| x["twitch_id"].as_str().unwrap().to_string()),
        );
        cursor = v["next"].as_str().unwrap().to_string();
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), 2100);
    assert_eq!(
        seen,
        (0..2100).map(|i| format!("{i:06}")).collect::<Vec<_>>()
    );
    let viewer = bearer(&token(Role::Viewer, "100", Some("1")));
    let (s, b) = call(&r, GET, "/v1/e/user_ids", Some(&viewer), None).await;
    reason(s, &b, StatusCode::FORBIDDEN);
    let (s, b) = call(&r, GET, "/v1/e/user_ids?cursor=!!!", Some(&admin), None).await;
    reason(s, &b, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn pin_flow_binds_and_revokes_a_game_token() {
    let r = both(Env::Sandbox);
    let (s, v) = call(
        &r,
        POST,
        "/v1/e/pin",
        None,
        Some(&json!({"identifier": testing::CLIENT_ID}).to_string()),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let game = bearer(v["token"].as_str().unwrap());
    let pin = v["pin"].as_str().unwrap().to_string();
    assert_eq!(pin.len(), 6);
    // Inert until validated.
    let (s, b) = call(&r, GET, "/v1/e/channel_state", Some(&game), None).await;
    reason(s, &b, StatusCode::UNAUTHORIZED);
    let streamer = bearer(&token(Role::Broadcaster, "555", Some("555")));
    let (_, v) = call(&r, GET, "/v1/e/pin_token_exists", Some(&streamer), None).await;
    assert_eq!(v, json!({"exists": false}));
    // A viewer cannot validate; a wrong or malformed PIN is refused.
    let viewer = bearer(&token(Role::Viewer, "555", Some("9")));
    let (s, b) = call(
        &r,
        POST,
        "/v1/e/validate_pin",
        Some(&viewer),
        Some(&json!({"pin": pin}).to_string()),
    )
    .await;
    reason(s, &b, StatusCode::FORBIDDEN);
    let (s, b) = call(
        &r,
        POST,
        "/v1/e/validate_pin",
        Some(&streamer),
        Some(r#"{"pin":"ZZZZZZ"}"#),
    )
    .await;
    reason(s, &b, StatusCode::NOT_FOUND);
    let (s, b) = call(
        &r,
        POST,
        "/v1/e/validate_pin",
        Some(&streamer),
        Some(r#"{"pin":"12"}"#),
    )
    .await;
    reason(s, &b, StatusCode::BAD_REQUEST);
    let (s, b) = call(
        &r,
        POST,
        "/v1/e/validate_pin",
        Some(&streamer),
        Some(r#"{}"#),
    )
    .await;
    reason(s, &b, StatusCode::BAD_REQUEST);
    // Validated (case-insensitively): the game acts as that channel's broadcaster.
    let (s, v) = call(
        &r,
        POST,
        "/v1/e/validate_pin",
        Some(&streamer),
        Some(&json!({"pin": pin.to_lowercase()}).to_string()),
    )
    .await;
    assert_eq!((s, v), (StatusCode::OK, json!({})));
    let (s, v) = call(
        &r,
        POST,
        "/v1/e/channel_state",
        Some(&game),
        Some(r#"{"from":"game"}"#),
    )
    .await;
    assert_eq!((s, v), (StatusCode::OK, json!({"from": "game"})));
    let (_, v) = call(&r, GET, "/v1/e/channel_state", Some(&streamer), None).await;
    assert_eq!(v, json!({"from": "game"}));
    let (_, v) = call(&r, GET, "/v1/e/pin_token_exists", Some(&streamer), None).await;
    assert_eq!(v, json!({"exists": true}));
    // The PIN is single-use.
    let (s, b) = call(
        &r,
        POST,
        "/v1/e/validate_pin",
        Some(&streamer),
        Some(&json!({"pin": pin}).to_string()),
    )
    .await;
    reason(s, &b, StatusCode::NOT_FOUND);
    // DELETE pin revokes every PIN token of the channel.
    let (s, v) = call(&r, Method::DELETE, "/v1/e/pin", Some(&streamer), None).await;
    assert_eq!((s, v), (StatusCode::OK, json!({})));
    let (s, b) = call(&r, GET, "/v1/e/channel_state", Some(&game), None).await;
    reason(s, &b, StatusCode::UNAUTHORIZED);
    let (_, v) = call(&r, GET, "/v1/e/pin_token_exists", Some(&streamer), None).await;
    assert_eq!(v, json!({"exists": false}));
    // Unknown extension.
    let (s, b) = call(
        &r,
        POST,
        "/v1/e/pin",
        None,
        Some(r#"{"identifier":"nope"}"#),
    )
    .await;
    assert_eq!(
        reason(s, &b, StatusCode::BAD_REQUEST),
        "No such extension found"
    );
}

#[tokio::test]
async fn several_secrets_verify_during_rotation() {
    let mut reg = testing::registry();
    reg.add(
        medkit::ids::ClientId::parse(testing::CLIENT_ID).unwrap(),
        b"the new secret",
    );
    let claims = auth::claims_for(Role::Viewer, "1", None, 60);
    let old = testing::sign(claims.clone());
    let mut new_reg = medkit::registry::Registry::default();
    new_reg.add(
        medkit::ids::ClientId::parse(testing::CLIENT_ID).unwrap(),
        b"the new secret",
    );
    let new = auth::mint(new_reg.get(testing::CLIENT_ID).unwrap(), claims);
    for t in [old, new] {
        assert!(auth::verify(&reg, Env::Production, Some(&bearer(&t))).is_ok());
    }
}

/// `POST gamelink/token`: a broadcaster's single-use PIN for a game, bound
/// to their channel; `DELETE pin` revokes the game's session it starts.
#[tokio::test]
async fn a_broadcaster_gets_a_single_use_gamelink_pin() {
    use medkit::ids::ClientId;
    use medkit::store::AuthStore;
    let store = EmbeddedStore::in_memory();
    let (app, _) = testing::app(store.clone(), Env::Sandbox);
    let r = medkit_auth::router(app);
    let streamer = bearer(&token(Role::Broadcaster, "555", Some("555")));
    let (s, v) = call(&r, POST, "/v1/e/gamelink/token", Some(&streamer), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let pin = v["token"].as_str().unwrap().to_string();
    assert_eq!(pin.len(), 6);
    assert!(
        pin.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()),
        "{pin}"
    );
    let (_, again) = call(&r, POST, "/v1/e/gamelink/token", Some(&streamer), None).await;
    assert_ne!(again["token"], v["token"], "a new PIN each time");
    // Only a broadcaster asks for one.
    let viewer = bearer(&token(Role::Viewer, "555", Some("9")));
    let (s, b) = call(&r, POST, "/v1/e/gamelink/token", Some(&viewer), None).await;
    reason(s, &b, StatusCode::FORBIDDEN);
    let (s, b) = call(&r, POST, "/v1/e/gamelink/token", None, None).await;
    reason(s, &b, StatusCode::UNAUTHORIZED);
    // A game's claim binds a token to the broadcaster's channel, once.
    let client = ClientId::parse(testing::CLIENT_ID).unwrap();
    let far = medkit::clock::now_secs() + 3600;
    let claimed = store
        .claim_game_pin(&client, &pin, far)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.channel.as_str(), "555");
    assert_eq!(
        store.claim_game_pin(&client, &pin, far).await.unwrap(),
        None
    );
    // Revoking the broadcaster's PINs ends it.
    let (s, v) = call(&r, Method::DELETE, "/v1/e/pin", Some(&streamer), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        store
            .pin_token_channel(&client, &claimed.token_id)
            .await
            .unwrap(),
        None
    );
}
