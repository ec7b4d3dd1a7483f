//! The codes function through its router, as the official client and an
//! extension backend call it.

use axum::Router;
use axum::http::{Method, StatusCode};
use medkit::auth::Role;
use medkit::env::Env;
use medkit::store::embedded::EmbeddedStore;
use medkit::testing::{self, bearer, call, ok, refused, token};
use serde_json::json;

const GET: Method = Method::GET;
const POST: Method = Method::POST;
const PUT: Method = Method::PUT;
const DELETE: Method = Method::DELETE;

fn setup() -> Router {
    let (app, _) = testing::app(EmbeddedStore::in_memory(), Env::Sandbox);
    medkit_codes::router(app)
}

fn backend() -> String {
    bearer(&token(Role::Backend, "100", None))
}
fn viewer(user: &str) -> String {
    bearer(&token(Role::Viewer, "100", Some(user)))
}

#[tokio::test]
async fn upload_mark_redeem_and_delete() {
    let r = setup();
    let v = ok(
        &r,
        PUT,
        "/v1/e/codes",
        &backend(),
        Some(r#"{"codes":[["G1","G2","G3"],["S1"]],"names":["gold","silver"],"indices":[2,0]}"#),
    )
    .await;
    assert_eq!(
        v,
        json!({"slots": [0, 2], "names": ["silver", "gold"], "remaining": [1, 3], "distributed": [0, 0]})
    );
    // Parts: appended codes extend the set.
    ok(
        &r,
        PUT,
        "/v1/e/codes?append=true",
        &backend(),
        Some(r#"{"codes":[["G4"]],"names":["gold"],"indices":[2]}"#),
    )
    .await;
    assert_eq!(
        ok(&r, GET, "/v1/e/codes", &backend(), None).await["remaining"],
        json!([1, 4])
    );

    ok(
        &r,
        POST,
        "/v1/e/codes/mark_from_list",
        &backend(),
        Some(r#"{"users":["7","8"],"prizes":[2],"prize_limits":[2]}"#),
    )
    .await;
    let e = ok(&r, GET, "/v1/e/codes/eligible", &viewer("7"), None).await;
    assert_eq!(e["eligible"], json!([0, 0, 2, 0, 0, 0, 0, 0, 0, 0]));
    assert_eq!(
        ok(&r, GET, "/v1/e/codes/eligibility", &viewer("7"), None).await,
        e,
        "alias"
    );
    // The official client sends {"all_prizes": slot}.
    let got = ok(
        &r,
        POST,
        "/v1/e/codes/redeem",
        &viewer("7"),
        Some(r#"{"all_prizes":2}"#),
    )
    .await;
    assert_eq!(got, json!({"code": "G1", "all_prizes": ["G1"]}));
    let got = ok(
        &r,
        POST,
        "/v1/e/codes/redeem",
        &viewer("7"),
        Some(r#"{"prize":2}"#),
    )
    .await;
    assert_eq!(got, json!({"code": "G2", "all_prizes": ["G1", "G2"]}));
    refused(
        &r,
        POST,
        "/v1/e/codes/redeem",
        &viewer("7"),
        Some(r#"{"prize":2}"#),
        StatusCode::FORBIDDEN,
    )
    .await;
    let mine = ok(&r, GET, "/v1/e/codes/redeemed", &viewer("7"), None).await;
    assert_eq!(mine["redeemed"][2], json!(["G1", "G2"]));
    assert_eq!(mine["redeemed"].as_array().unwrap().len(), 10);
    // Viewer 8 takes the rest; then the set is exhausted for a new winner.
    ok(
        &r,
        POST,
        "/v1/e/codes/redeem",
        &viewer("8"),
        Some(r#"{"prize":2}"#),
    )
    .await;
    ok(
        &r,
        POST,
        "/v1/e/codes/redeem",
        &viewer("8"),
        Some(r#"{"prize":2}"#),
    )
    .await;
    ok(
        &r,
        POST,
        "/v1/e/codes/mark_from_list",
        &backend(),
        Some(r#"{"users":["9"],"prizes":[2],"prize_limits":[1]}"#),
    )
    .await;
    assert_eq!(
        ok(&r, GET, "/v1/e/codes/eligible", &viewer("9"), None).await["eligible"][2],
        0,
        "nothing left to claim"
    );
    refused(
        &r,
        POST,
        "/v1/e/codes/redeem",
        &viewer("9"),
        Some(r#"{"prize":2}"#),
        StatusCode::CONFLICT,
    )
    .await;
    let d = ok(&r, DELETE, "/v1/e/codes", &backend(), None).await;
    assert_eq!(d, json!({"distributed": [0, 4]}));
    assert_eq!(
        ok(&r, GET, "/v1/e/codes", &backend(), None).await["names"],
        json!([])
    );
}

#[tokio::test]
async fn winners_come_from_a_poll() {
    let (app, _) = testing::app(EmbeddedStore::in_memory(), Env::Sandbox);
    let r = medkit_codes::router(app.clone());
    let votes = medkit_aggregate::router(app);
    for (user, value) in [("1", 3), ("2", 3), ("3", 4)] {
        let body = format!(r#"{{"value":{value}}}"#);
        ok(
            &votes,
            POST,
            "/v1/e/vote?id=final",
            &viewer(user),
            Some(&body),
        )
        .await;
    }
    // An anonymous right answer cannot win a code (no Twitch identity).
    let anon = bearer(&token(Role::Viewer, "100", None));
    ok(
        &votes,
        POST,
        "/v1/e/vote?id=final",
        &anon,
        Some(r#"{"value":3}"#),
    )
    .await;
    ok(
        &r,
        PUT,
        "/v1/e/codes",
        &backend(),
        Some(r#"{"codes":[["A","B","C"]],"names":["p"]}"#),
    )
    .await;
    let cutoff = medkit::clock::now_secs() + 5;
    let body = json!({"poll_id": "final", "correct": 3, "cutoff_timestamp": cutoff, "prizes": [0], "prize_limits": [1]});
    let v = ok(
        &r,
        POST,
        "/v1/e/codes/mark_from_poll",
        &backend(),
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(v, json!({"marked": 2}));
    assert_eq!(
        ok(&r, GET, "/v1/e/codes/eligible", &viewer("1"), None).await["eligible"][0],
        1
    );
    assert_eq!(
        ok(&r, GET, "/v1/e/codes/eligible", &viewer("3"), None).await["eligible"][0],
        0
    );
    // A cutoff before the votes marks nobody; caps never shrink.
    let early = json!({"poll_id": "final", "correct": 3, "cutoff_timestamp": 1, "prizes": [0], "prize_limits": [1]});
    assert_eq!(
        ok(
            &r,
            POST,
            "/v1/e/codes/mark_from_poll",
            &backend(),
            Some(&early.to_string())
        )
        .await,
        json!({"marked": 0})
    );
    assert_eq!(
        ok(&r, GET, "/v1/e/codes/eligible", &viewer("2"), None).await["eligible"][0],
        1
    );
    refused(
        &r,
        POST,
        "/v1/e/codes/redeem",
        &viewer("3"),
        Some(r#"{"prize":0}"#),
        StatusCode::FORBIDDEN,
    )
    .await;
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let r = setup();
    ok(
        &r,
        PUT,
        "/v1/e/codes",
        &backend(),
        Some(r#"{"codes":[["A"]],"names":["n"]}"#),
    )
    .await;
    let before = ok(&r, GET, "/v1/e/codes", &backend(), None).await;
    let eleven: Vec<Vec<String>> = (0..11).map(|i| vec![format!("c{i}")]).collect();
    let eleven_names: Vec<String> = (0..11).map(|i| format!("n{i}")).collect();
    for body in [
        json!({"codes": eleven, "names": eleven_names}).to_string(),
        r#"{"codes":[["A"]],"names":["x"],"indices":[10]}"#.into(),
        r#"{"codes":[["A"],["B"]],"names":["x"]}"#.into(),
        r#"{"codes":[["A"],["B"]],"names":["x","x"]}"#.into(),
        r#"{"codes":[[""]],"names":["x"]}"#.into(),
        json!({"codes": [["x".repeat(64)]], "names": ["x"]}).to_string(),
    ] {
        refused(
            &r,
            PUT,
            "/v1/e/codes",
            &backend(),
            Some(&body),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    refused(
        &r,
        PUT,
        "/v1/e/codes?append=true",
        &backend(),
        Some(r#"{"codes":[["B"]],"names":["m"],"indices":[4]}"#),
        StatusCode::NOT_FOUND,
    )
    .await;
    refused(
        &r,
        PUT,
        "/v1/e/codes?append=true",
        &backend(),
        Some(r#"{"codes":[["B"]],"names":["other"],"indices":[0]}"#),
        StatusCode::BAD_REQUEST,
    )
    .await;
    refused(
        &r,
        PUT,
        "/v1/e/codes",
        &backend(),
        Some(r#"{"codes":[["B"]],"names":["n"],"indices":[1]}"#),
        StatusCode::BAD_REQUEST,
    )
    .await;
    refused(
        &r,
        POST,
        "/v1/e/codes/mark_from_list",
        &backend(),
        Some(r#"{"users":["1"],"prizes":[0,1],"prize_limits":[1]}"#),
        StatusCode::BAD_REQUEST,
    )
    .await;
    refused(
        &r,
        POST,
        "/v1/e/codes/mark_from_list",
        &backend(),
        Some(r#"{"users":["1"],"prizes":[5],"prize_limits":[1]}"#),
        StatusCode::NOT_FOUND,
    )
    .await;
    refused(
        &r,
        POST,
        "/v1/e/codes/mark_from_poll",
        &backend(),
        Some(r#"{"correct":1,"prizes":[0],"prize_limits":[1]}"#),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(ok(&r, GET, "/v1/e/codes", &backend(), None).await, before);
    // Roles and identity.
    refused(
        &r,
        PUT,
        "/v1/e/codes",
        &viewer("1"),
        Some(r#"{"codes":[["B"]],"names":["z"],"indices":[3]}"#),
        StatusCode::FORBIDDEN,
    )
    .await;
    refused(
        &r,
        DELETE,
        "/v1/e/codes",
        &viewer("1"),
        None,
        StatusCode::FORBIDDEN,
    )
    .await;
    refused(
        &r,
        GET,
        "/v1/e/codes",
        &bearer(&token(Role::Broadcaster, "100", Some("100"))),
        None,
        StatusCode::FORBIDDEN,
    )
    .await;
    let anon = bearer(&token(Role::Viewer, "100", None));
    refused(
        &r,
        GET,
        "/v1/e/codes/eligible",
        &anon,
        None,
        StatusCode::FORBIDDEN,
    )
    .await;
    refused(
        &r,
        POST,
        "/v1/e/codes/redeem",
        &anon,
        Some(r#"{"prize":0}"#),
        StatusCode::FORBIDDEN,
    )
    .await;
    refused(
        &r,
        POST,
        "/v1/e/codes/redeem",
        &viewer("1"),
        Some(r#"{"prize":0}"#),
        StatusCode::FORBIDDEN,
    )
    .await;
    refused(
        &r,
        POST,
        "/v1/e/codes/redeem",
        &viewer("1"),
        Some(r#"{"prize":7}"#),
        StatusCode::NOT_FOUND,
    )
    .await;
    refused(
        &r,
        POST,
        "/v1/e/codes/redeem",
        &viewer("1"),
        Some(r#"{"prize":12}"#),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(ok(&r, GET, "/v1/e/codes", &backend(), None).await, before);
}

#[tokio::test]
async fn uploads_may_be_larger_than_other_requests() {
    let r = setup();
    // ~2.2 MB: over the 1 MiB every other endpoint accepts, under the 6 MB limit.
    let codes: Vec<String> = (0..150_000).map(|i| format!("CODE-{i:09}")).collect();
    let body = json!({"codes": [codes], "names": ["big"]}).to_string();
    assert!(body.len() > 2_000_000);
    let v = ok(&r, PUT, "/v1/e/codes", &backend(), Some(&body)).await;
    assert_eq!(v["remaining"], json!([150_000]));
    let huge = "x".repeat(medkit_codes::MAX_UPLOAD_BYTES + 10);
    let (s, _) = call(&r, PUT, "/v1/e/codes", Some(&backend()), Some(&huge)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let (s, _) = call(
        &r,
        POST,
        "/v1/e/codes/mark_from_list",
        Some(&backend()),
        Some(&"y".repeat(2 << 20)),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
}

/// DynamoDB round trips per redeem (target ≤ 3), counted against DynamoDB Local.
#[tokio::test]
async fn dynamodb_round_trips_per_redeem() {
    let Some((store, rt)) = testing::dynamo_store("codes dynamodb_round_trips_per_redeem").await
    else {
        return;
    };
    let (app, _) = testing::app(store, Env::Sandbox);
    let r = medkit_codes::router(app);
    ok(
        &r,
        PUT,
        "/v1/e/codes",
        &backend(),
        Some(r#"{"codes":[["A","B","C"]],"names":["p"]}"#),
    )
    .await;
    ok(
        &r,
        POST,
        "/v1/e/codes/mark_from_list",
        &backend(),
        Some(r#"{"users":["1","2","3"],"prizes":[0],"prize_limits":[1]}"#),
    )
    .await;
    rt.reset();
    ok(
        &r,
        POST,
        "/v1/e/codes/redeem",
        &viewer("1"),
        Some(r#"{"prize":0}"#),
    )
    .await;
    let cold = rt.get();
    println!(
        "round trips: first redeem in a process = {cold} (+ set generation and chunk reads, then cached)"
    );
    rt.reset();
    ok(
        &r,
        POST,
        "/v1/e/codes/redeem",
        &viewer("2"),
        Some(r#"{"prize":0}"#),
    )
    .await;
    let warm = rt.get();
    println!("round trips: redeem = {warm}");
    assert_eq!(warm, 3);
    assert_eq!(cold, 5);
}

/// Issue #19, finding 4: `mark_from_poll` made one write per winner x prize
/// with no cap, and `mark_from_list` up to 10,000 x 10 = 100,000 of them, 16
/// in flight: a request that API Gateway (30 s) cuts off part-way. One
/// request now makes at most 10,000 marks; more are refused whole with 413
/// and a reason, and nothing is marked.
#[tokio::test]
async fn a_mark_too_big_for_one_request_is_refused_whole() {
    let r = setup();
    ok(
        &r,
        PUT,
        "/v1/e/codes",
        &backend(),
        Some(r#"{"codes":[["A1"],["B1"]],"names":["a","b"],"indices":[0,1]}"#),
    )
    .await;
    let users: Vec<String> = (0..medkit::codes::MAX_MARKS_PER_REQUEST)
        .map(|i| format!("{}", 10_000 + i))
        .collect();
    let body = json!({"users": users, "prizes": [0, 1], "prize_limits": [1, 1]}).to_string();
    let reason = refused(
        &r,
        POST,
        "/v1/e/codes/mark_from_list",
        &backend(),
        Some(&body),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert!(reason.contains("mark_from_list"), "{reason}");
    let eligible = || async { ok(&r, GET, "/v1/e/codes/eligible", &viewer("10000"), None).await };
    assert_eq!(
        eligible().await["eligible"],
        json!([0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        "nothing was marked"
    );
    // The same users for one prize are within the bound.
    let one = json!({"users": users, "prizes": [0], "prize_limits": [1]}).to_string();
    ok(
        &r,
        POST,
        "/v1/e/codes/mark_from_list",
        &backend(),
        Some(&one),
    )
    .await;
    assert_eq!(eligible().await["eligible"][0], json!(1));
}
