//! The aggregate function through its router, as the official client calls it.

use axum::Router;
use axum::http::{Method, StatusCode};
use medkit::auth::Role;
use medkit::clock::now_ms;
use medkit::delivery::local::LocalHub;
use medkit::env::Env;
use medkit::realtime::event::Audience;
use medkit::store::embedded::EmbeddedStore;
use medkit::testing::{self, bearer, call, ok, reason, refused, token};
use serde_json::{Value, json};

const GET: Method = Method::GET;
const POST: Method = Method::POST;
const DELETE: Method = Method::DELETE;

fn setup() -> (Router, LocalHub) {
    let (app, hub) = testing::app(EmbeddedStore::in_memory(), Env::Sandbox);
    (medkit_aggregate::router(app), hub)
}

fn viewer(user: &str) -> String {
    bearer(&token(Role::Viewer, "100", Some(user)))
}
fn viewer_in(channel: &str, user: &str) -> String {
    bearer(&token(Role::Viewer, channel, Some(user)))
}
fn broadcaster() -> String {
    bearer(&token(Role::Broadcaster, "100", Some("100")))
}
fn broadcaster_of(channel: &str) -> String {
    bearer(&token(Role::Broadcaster, channel, Some(channel)))
}
fn admin() -> String {
    bearer(&token(Role::Admin, "100", None))
}
fn backend() -> String {
    bearer(&token(Role::Backend, "100", None))
}

#[tokio::test]
async fn votes_replace_and_report_vote_data() {
    let (r, hub) = setup();
    let mut events = hub.subscribe();
    let v = ok(
        &r,
        POST,
        "/v1/e/vote?id=poll1",
        &viewer("1"),
        Some(r#"{"value":3}"#),
    )
    .await;
    assert_eq!(v["count"], 1);
    assert_eq!(v["sum"], 3);
    assert_eq!(v["vote"], 3);
    assert_eq!(v["specific"].as_array().unwrap().len(), 32);
    assert_eq!(v["specific"][3], 1);
    ok(
        &r,
        POST,
        "/v1/e/vote?id=poll1",
        &viewer("2"),
        Some(r#"{"value":5,"count":3}"#),
    )
    .await;
    // Viewer 1 changes their mind: their old ballot no longer counts.
    let v = ok(
        &r,
        POST,
        "/v1/e/vote?id=poll1",
        &viewer("1"),
        Some(r#"{"value":1}"#),
    )
    .await;
    assert_eq!(
        (v["count"].clone(), v["sum"].clone()),
        (json!(4), json!(16))
    );
    assert_eq!(v["specific"][3], 0);
    assert_eq!(v["mean"], 4.0);
    // Population stddev of {1, 5, 5, 5}: sqrt(3).
    assert!((v["stddev"].as_f64().unwrap() - 3f64.sqrt()).abs() < 1e-12);
    let mine = ok(&r, GET, "/v1/e/vote?id=poll1", &viewer("2"), None).await;
    assert_eq!(mine["vote"], 5);
    assert_eq!(mine["count"], 4);
    let theirs = ok(&r, GET, "/v1/e/vote?id=poll1", &viewer("9"), None).await;
    assert!(theirs.get("vote").is_none(), "no ballot, no `vote`");
    // The default id is `default`, and polls are per channel.
    ok(&r, POST, "/v1/e/vote", &viewer("1"), Some(r#"{"value":7}"#)).await;
    assert_eq!(
        ok(&r, GET, "/v1/e/vote?id=default", &viewer("1"), None).await["sum"],
        7
    );
    assert_eq!(
        ok(&r, GET, "/v1/e/vote", &viewer_in("200", "1"), None).await["count"],
        0
    );
    // The first vote of a window announced the poll's figures at once.
    let e = events.recv().await.unwrap();
    assert_eq!(e.name, "vote_update:poll1");
    assert_eq!(
        e.audience,
        Audience::Channel(medkit::ids::ChannelId::parse("100").unwrap())
    );
    assert_eq!(e.data["id"], "poll1");
    assert_eq!(e.data["stats"]["count"], 1);
    assert!(e.data["stats"].get("vote").is_none());
}

#[tokio::test]
async fn vote_updates_are_throttled_with_a_trailing_event() {
    let (r, hub) = setup();
    let mut events = hub.subscribe();
    for (i, value) in [1, 2, 3, 4].iter().enumerate() {
        let body = format!(r#"{{"value":{value}}}"#);
        ok(
            &r,
            POST,
            "/v1/e/vote?id=t",
            &viewer(&i.to_string()),
            Some(&body),
        )
        .await;
    }
    let first = events.recv().await.unwrap();
    assert_eq!(first.data["stats"]["count"], 1);
    assert!(events.try_recv().is_err(), "nothing more within the window");
    // One trailing event at the window's end carries the final figures.
    let trailing = tokio::time::timeout(std::time::Duration::from_secs(7), events.recv())
        .await
        .expect("a trailing vote_update")
        .unwrap();
    assert_eq!(trailing.data["stats"]["count"], 4);
    assert_eq!(trailing.data["stats"]["sum"], 10);
    assert!(events.try_recv().is_err());
}

#[tokio::test]
async fn global_polls_are_extension_wide() {
    let (r, hub) = setup();
    let mut events = hub.subscribe();
    ok(
        &r,
        POST,
        "/v1/e/vote?id=global-best",
        &viewer_in("100", "1"),
        Some(r#"{"value":1}"#),
    )
    .await;
    ok(
        &r,
        POST,
        "/v1/e/vote?id=global-best",
        &viewer_in("200", "2"),
        Some(r#"{"value":2}"#),
    )
    .await;
    let v = ok(
        &r,
        GET,
        "/v1/e/vote?id=global-best",
        &viewer_in("300", "3"),
        None,
    )
    .await;
    assert_eq!(v["count"], 2);
    assert_eq!(events.recv().await.unwrap().audience, Audience::Extension);
    // A broadcaster may not clear what belongs to every channel.
    refused(
        &r,
        DELETE,
        "/v1/e/vote?id=global-best",
        &broadcaster(),
        None,
        StatusCode::FORBIDDEN,
    )
    .await;
    ok(&r, DELETE, "/v1/e/vote?id=global-best", &admin(), None).await;
    assert_eq!(
        ok(&r, GET, "/v1/e/vote?id=global-best", &admin(), None).await["count"],
        0
    );
}

#[tokio::test]
async fn vote_logs_and_delete() {
    let (r, _) = setup();
    ok(
        &r,
        POST,
        "/v1/e/vote?id=p",
        &viewer("11"),
        Some(r#"{"value":2,"count":2}"#),
    )
    .await;
    let anon = bearer(&token(Role::Viewer, "100", None));
    ok(&r, POST, "/v1/e/vote?id=p", &anon, Some(r#"{"value":-4}"#)).await;
    let logs = ok(&r, GET, "/v1/e/vote_logs?id=p", &backend(), None).await;
    let rows = logs["result"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let shared = rows.iter().find(|r| r["value"] == 2).unwrap();
    assert_eq!(shared["identifier"], "11");
    assert_eq!(shared["opaque"], "U11");
    assert_eq!(shared["count"], 2);
    assert!(shared["timestamp"].as_i64().unwrap() > 1_700_000_000);
    let anonymous = rows.iter().find(|r| r["value"] == -4).unwrap();
    assert!(anonymous["identifier"].as_str().unwrap().starts_with('A'));
    assert_eq!(
        ok(&r, GET, "/v1/e/vote_logs?id=p", &admin(), None).await,
        logs
    );
    refused(
        &r,
        GET,
        "/v1/e/vote_logs?id=p",
        &viewer("11"),
        None,
        StatusCode::FORBIDDEN,
    )
    .await;
    refused(
        &r,
        GET,
        "/v1/e/vote_logs?id=p",
        &broadcaster(),
        None,
        StatusCode::FORBIDDEN,
    )
    .await;
    refused(
        &r,
        DELETE,
        "/v1/e/vote?id=p",
        &viewer("11"),
        None,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(
        ok(&r, GET, "/v1/e/vote?id=p", &viewer("11"), None).await["count"],
        3
    );
    ok(&r, DELETE, "/v1/e/vote?id=p", &broadcaster(), None).await;
    assert_eq!(
        ok(&r, GET, "/v1/e/vote?id=p", &viewer("11"), None).await["count"],
        0
    );
    assert_eq!(
        ok(&r, GET, "/v1/e/vote_logs?id=p", &admin(), None).await["result"],
        json!([])
    );
    ok(
        &r,
        DELETE,
        "/v1/e/vote?id=never-existed",
        &broadcaster(),
        None,
    )
    .await;
}

#[tokio::test]
async fn bad_votes_are_refused_and_change_nothing() {
    let (r, _) = setup();
    ok(
        &r,
        POST,
        "/v1/e/vote?id=p",
        &viewer("1"),
        Some(r#"{"value":2}"#),
    )
    .await;
    for body in [
        r#"{}"#,
        r#"{"value":"2"}"#,
        r#"{"value":2.5}"#,
        r#"{"value":1001}"#,
        r#"{"value":-1001}"#,
        r#"{"value":1,"count":0}"#,
        r#"{"value":1,"count":31}"#,
        r#"[1]"#,
        r#"not json"#,
    ] {
        refused(
            &r,
            POST,
            "/v1/e/vote?id=p",
            &viewer("1"),
            Some(body),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    refused(
        &r,
        POST,
        "/v1/e/vote?id=a|b",
        &viewer("1"),
        Some(r#"{"value":1}"#),
        StatusCode::BAD_REQUEST,
    )
    .await;
    let v = ok(&r, GET, "/v1/e/vote?id=p", &viewer("1"), None).await;
    assert_eq!(
        (v["count"].clone(), v["vote"].clone()),
        (json!(1), json!(2))
    );
    let (s, _) = call(&r, POST, "/v1/e/vote?id=p", None, Some(r#"{"value":1}"#)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn rankings_hold_one_key_per_viewer() {
    let (r, _) = setup();
    let v = ok(
        &r,
        POST,
        "/v1/e/rank?id=food",
        &viewer("1"),
        Some(r#"{"key":"pizza"}"#),
    )
    .await;
    assert_eq!(v, json!({"accepted": true}));
    ok(
        &r,
        POST,
        "/v1/e/rank?id=food",
        &viewer("2"),
        Some(r#"{"key":"pizza"}"#),
    )
    .await;
    ok(
        &r,
        POST,
        "/v1/e/rank?id=food",
        &viewer("3"),
        Some(r#"{"key":"tacos"}"#),
    )
    .await;
    let v = ok(
        &r,
        POST,
        "/v1/e/rank?id=food",
        &viewer("3"),
        Some(r#"{"key":"sushi"}"#),
    )
    .await;
    assert_eq!(v, json!({"accepted": true, "original": "tacos"}));
    let data = ok(&r, GET, "/v1/e/rank?id=food", &viewer("9"), None).await;
    assert_eq!(
        data,
        json!({"data": [{"key": "pizza", "score": 2}, {"key": "sushi", "score": 1}]})
    );
    for body in [r#"{}"#, r#"{"key":""}"#, r#"{"key":5}"#] {
        refused(
            &r,
            POST,
            "/v1/e/rank?id=food",
            &viewer("1"),
            Some(body),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let long = format!(r#"{{"key":"{}"}}"#, "k".repeat(129));
    refused(
        &r,
        POST,
        "/v1/e/rank?id=food",
        &viewer("1"),
        Some(&long),
        StatusCode::BAD_REQUEST,
    )
    .await;
    refused(
        &r,
        DELETE,
        "/v1/e/rank?id=food",
        &viewer("1"),
        None,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(
        ok(&r, GET, "/v1/e/rank?id=food", &viewer("9"), None).await,
        data,
        "unchanged"
    );
    ok(&r, DELETE, "/v1/e/rank?id=food", &broadcaster(), None).await;
    assert_eq!(
        ok(&r, GET, "/v1/e/rank?id=food", &viewer("9"), None).await,
        json!({"data": []})
    );
}

#[tokio::test]
async fn rank_returns_the_top_100() {
    let (r, _) = setup();
    for i in 0..105 {
        let body = format!(r#"{{"key":"k{i}"}}"#);
        ok(
            &r,
            POST,
            "/v1/e/rank",
            &viewer(&format!("u{i}")),
            Some(&body),
        )
        .await;
    }
    ok(
        &r,
        POST,
        "/v1/e/rank",
        &viewer("extra"),
        Some(r#"{"key":"k50"}"#),
    )
    .await;
    let data = ok(&r, GET, "/v1/e/rank", &viewer("x"), None).await;
    let rows = data["data"].as_array().unwrap();
    assert_eq!(rows.len(), 100);
    assert_eq!(rows[0], json!({"key": "k50", "score": 2}));
}

#[tokio::test]
async fn accumulate_collects_newest_first() {
    let (r, _) = setup();
    let before = now_ms();
    ok(
        &r,
        POST,
        "/v1/e/accumulate?id=ideas",
        &viewer("1"),
        Some(r#"{"idea":"a"}"#),
    )
    .await;
    // Entries are ordered by the millisecond they were observed; two in the
    // same millisecond have no defined order.
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let anon = bearer(&token(Role::Viewer, "100", None));
    ok(
        &r,
        POST,
        "/v1/e/accumulate?id=ideas",
        &anon,
        Some(r#"{"idea":"b"}"#),
    )
    .await;
    ok(
        &r,
        POST,
        "/v1/e/accumulate?id=ideas",
        &viewer_in("200", "5"),
        Some(r#""elsewhere""#),
    )
    .await;
    // The official client sends start=undefined without a start.
    let mine = ok(
        &r,
        GET,
        "/v1/e/accumulate?id=ideas&start=undefined",
        &broadcaster(),
        None,
    )
    .await;
    let rows = mine["data"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        2,
        "a broadcaster sees their own channel: {mine}"
    );
    assert_eq!(rows[0]["data"], json!({"idea": "b"}));
    assert_eq!(rows[0]["user_id"], "");
    assert_eq!(rows[1]["user_id"], "1");
    assert_eq!(rows[1]["opaque_user_id"], "U1");
    assert_eq!(rows[1]["channel_id"], "100");
    assert!(rows[1]["observed"].as_i64().unwrap() >= before);
    assert_eq!(mine["latest"], rows[0]["observed"]);
    // `latest` is the next call's start: nothing new since.
    let latest = mine["latest"].as_i64().unwrap();
    let since = ok(
        &r,
        GET,
        &format!("/v1/e/accumulate?id=ideas&start={latest}"),
        &broadcaster(),
        None,
    )
    .await;
    assert_eq!(since["data"], json!([]));
    assert_eq!(since["latest"], latest);
    let all = ok(&r, GET, "/v1/e/accumulate?id=ideas", &admin(), None).await;
    assert_eq!(
        all["data"].as_array().unwrap().len(),
        3,
        "the extension sees every channel"
    );
    assert_eq!(
        ok(
            &r,
            GET,
            "/v1/e/accumulate?id=ideas",
            &broadcaster_of("200"),
            None
        )
        .await["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    refused(
        &r,
        GET,
        "/v1/e/accumulate?id=ideas",
        &viewer("1"),
        None,
        StatusCode::FORBIDDEN,
    )
    .await;
    refused(
        &r,
        GET,
        "/v1/e/accumulate?id=ideas&start=soon",
        &broadcaster(),
        None,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let big = format!(r#"{{"text":"{}"}}"#, "x".repeat(250));
    refused(
        &r,
        POST,
        "/v1/e/accumulate?id=ideas",
        &viewer("1"),
        Some(&big),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        ok(&r, GET, "/v1/e/accumulate?id=ideas", &admin(), None).await["data"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

fn question(id: &str) -> String {
    json!({
        "id": id, "name": format!("Question {id}"), "short_name": id, "description": "",
        "options": [
            {"id": "a", "name": "A", "short_name": "a", "description": ""},
            {"id": "b", "name": "B", "short_name": "b", "description": ""}
        ]
    })
    .to_string()
}

async fn transition(r: &Router, q: &str, to: &str, winner: Option<&str>) -> (StatusCode, Value) {
    let mut body = json!({"transition": to});
    if let Some(w) = winner {
        body["winner"] = json!(w);
    }
    call(
        r,
        POST,
        &format!("/v1/e/curated_poll_state?id={q}"),
        Some(&broadcaster()),
        Some(&body.to_string()),
    )
    .await
}

#[tokio::test]
async fn trivia_flows_from_edit_to_leaderboard() {
    let (r, _) = setup();
    let q = ok(
        &r,
        POST,
        "/v1/e/curated_poll_edit",
        &broadcaster(),
        Some(&question("q1")),
    )
    .await;
    assert_eq!(q["state"], "state-inactive");
    assert_eq!(q["options"].as_array().unwrap().len(), 2);
    // Viewers never see inactive questions, and cannot vote on them.
    assert_eq!(
        ok(&r, GET, "/v1/e/curated_poll", &viewer("1"), None).await,
        json!({"questions": []})
    );
    refused(
        &r,
        GET,
        "/v1/e/curated_poll?id=q1",
        &viewer("1"),
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    let vote_a = r#"{"question_id":"q1","vote":"a"}"#;
    refused(
        &r,
        POST,
        "/v1/e/curated_poll",
        &viewer("1"),
        Some(vote_a),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(
        ok(&r, GET, "/v1/e/curated_poll", &broadcaster(), None).await["questions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let (s, v) = transition(&r, "q1", "state-unlocked", None).await;
    assert_eq!((s, v), (StatusCode::OK, json!({"state": "state-unlocked"})));
    // Viewer 1 (channel 100) votes b then a: the latest vote counts.
    ok(
        &r,
        POST,
        "/v1/e/curated_poll",
        &viewer("1"),
        Some(r#"{"question_id":"q1","vote":"b"}"#),
    )
    .await;
    ok(&r, POST, "/v1/e/curated_poll", &viewer("1"), Some(vote_a)).await;
    ok(
        &r,
        POST,
        "/v1/e/curated_poll",
        &viewer("2"),
        Some(r#"{"question_id":"q1","vote":"b"}"#),
    )
    .await;
    ok(&r, POST, "/v1/e/curated_poll", &broadcaster(), Some(vote_a)).await;
    ok(
        &r,
        POST,
        "/v1/e/curated_poll",
        &viewer_in("200", "3"),
        Some(vote_a),
    )
    .await;
    // Viewer 3 joined team 200 with their first vote; voting from channel 100 keeps them there.
    ok(
        &r,
        POST,
        "/v1/e/curated_poll",
        &viewer_in("100", "3"),
        Some(vote_a),
    )
    .await;
    assert_eq!(
        ok(&r, GET, "/v1/e/team_membership", &viewer("3"), None).await,
        json!({"id": "200"})
    );
    assert_eq!(
        ok(
            &r,
            POST,
            "/v1/e/team_membership",
            &viewer_in("300", "4"),
            None
        )
        .await,
        json!({"id": "300"})
    );
    assert_eq!(
        ok(&r, GET, "/v1/e/team_membership", &viewer("5"), None).await,
        json!({"id": null})
    );
    refused(
        &r,
        POST,
        "/v1/e/curated_poll",
        &viewer("1"),
        Some(r#"{"question_id":"q1","vote":"zzz"}"#),
        StatusCode::BAD_REQUEST,
    )
    .await;
    refused(
        &r,
        POST,
        "/v1/e/curated_poll",
        &viewer("1"),
        Some(r#"{"question_id":"nope","vote":"a"}"#),
        StatusCode::NOT_FOUND,
    )
    .await;

    // A vote while the question is not open: 409.
    let voter1 = viewer("1");
    let vote_is_closed = || {
        refused(
            &r,
            POST,
            "/v1/e/curated_poll",
            &voter1,
            Some(vote_a),
            StatusCode::CONFLICT,
        )
    };
    assert_eq!(
        transition(&r, "q1", "state-locked", None).await.0,
        StatusCode::OK
    );
    vote_is_closed().await;
    let (s, v) = transition(&r, "q1", "state-results", None).await;
    reason(s, &v, StatusCode::BAD_REQUEST);
    // Reopened, then the answer revealed while voting is open: that locks
    // the question implicitly.
    assert_eq!(
        transition(&r, "q1", "state-unlocked", None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        transition(&r, "q1", "state-results", Some("a")).await.0,
        StatusCode::OK,
        "unlocked → results"
    );
    vote_is_closed().await;
    let (s, v) = transition(&r, "q1", "state-locked", None).await;
    reason(s, &v, StatusCode::CONFLICT);

    let seen = ok(&r, GET, "/v1/e/curated_poll?id=q1", &viewer("1"), None).await;
    assert_eq!(seen["results"], json!({"you": "a", "winner": "a"}));
    let list = ok(&r, GET, "/v1/e/curated_poll", &viewer("2"), None).await;
    assert_eq!(
        list["questions"][0]["results"],
        json!({"you": "b", "winner": "a"})
    );

    let board = ok(&r, GET, "/v1/e/curated_poll_leaderboard", &admin(), None).await;
    let rows = board["leaderboard"].as_array().unwrap();
    let team = |id: &str| rows.iter().find(|t| t["team_id"] == id).unwrap().clone();
    let t100 = team("100");
    // Team 100: viewers 1 (a) and 2 (b) and the broadcaster (a).
    assert_eq!(t100["questions"]["q1"]["team_votes"], 3);
    assert!(
        (t100["questions"]["q1"]["percent_correct"].as_f64().unwrap() - 200.0 / 3.0).abs() < 1e-9
    );
    assert_eq!(t100["questions"]["q1"]["broadcaster_correct"], true);
    let t200 = team("200");
    assert_eq!(t200["questions"]["q1"]["team_votes"], 1);
    assert_eq!(t200["combined_score"], 100.0);
    assert_eq!(rows[0]["team_id"], "200", "best team first");
    refused(
        &r,
        GET,
        "/v1/e/curated_poll_leaderboard",
        &viewer("1"),
        None,
        StatusCode::FORBIDDEN,
    )
    .await;
    ok(
        &r,
        GET,
        "/v1/e/curated_poll_leaderboard",
        &broadcaster(),
        None,
    )
    .await;
}

#[tokio::test]
async fn trivia_edits_are_validated() {
    let (r, _) = setup();
    refused(
        &r,
        POST,
        "/v1/e/curated_poll_edit",
        &viewer("1"),
        Some(&question("q")),
        StatusCode::FORBIDDEN,
    )
    .await;
    refused(
        &r,
        POST,
        "/v1/e/curated_poll_edit",
        &broadcaster(),
        Some(r#"{"name":"no id"}"#),
        StatusCode::BAD_REQUEST,
    )
    .await;
    for i in 0..64 {
        ok(
            &r,
            POST,
            "/v1/e/curated_poll_edit",
            &admin(),
            Some(&question(&format!("q{i:02}"))),
        )
        .await;
    }
    let why = refused(
        &r,
        POST,
        "/v1/e/curated_poll_edit",
        &admin(),
        Some(&question("q64")),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(why.contains("64"), "{why}");
    // Options: add, replace, delete (DELETE with a body).
    let q = ok(
        &r,
        POST,
        "/v1/e/curated_poll_edit_option",
        &broadcaster(),
        Some(r#"{"id":"q00","option":{"id":"c","name":"C"}}"#),
    )
    .await;
    assert_eq!(q["options"].as_array().unwrap().len(), 3);
    let q = ok(
        &r,
        DELETE,
        "/v1/e/curated_poll_edit_option",
        &broadcaster(),
        Some(r#"{"question":"q00","option":"a"}"#),
    )
    .await;
    let ids: Vec<&str> = q["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["b", "c"]);
    refused(
        &r,
        DELETE,
        "/v1/e/curated_poll_edit_option",
        &broadcaster(),
        Some(r#"{"question":"q00","option":"a"}"#),
        StatusCode::NOT_FOUND,
    )
    .await;
    refused(
        &r,
        POST,
        "/v1/e/curated_poll_edit_option",
        &viewer("1"),
        Some(r#"{"id":"q00","option":{"id":"d"}}"#),
        StatusCode::FORBIDDEN,
    )
    .await;
    refused(
        &r,
        POST,
        "/v1/e/curated_poll_edit_option",
        &broadcaster(),
        Some(r#"{"id":"missing","option":{"id":"d"}}"#),
        StatusCode::NOT_FOUND,
    )
    .await;
    refused(
        &r,
        POST,
        "/v1/e/curated_poll_state?id=q00",
        &viewer("1"),
        Some(r#"{"transition":"state-unlocked"}"#),
        StatusCode::FORBIDDEN,
    )
    .await;
    refused(
        &r,
        POST,
        "/v1/e/curated_poll_state?id=q00",
        &broadcaster(),
        Some(r#"{"transition":"state-locked"}"#),
        StatusCode::CONFLICT,
    )
    .await;
    refused(
        &r,
        POST,
        "/v1/e/curated_poll_state?id=q00",
        &broadcaster(),
        Some(r#"{"transition":"state-bogus"}"#),
        StatusCode::BAD_REQUEST,
    )
    .await;
    // An edit keeps the state.
    assert_eq!(
        transition(&r, "q00", "state-unlocked", None).await.0,
        StatusCode::OK
    );
    let q = ok(
        &r,
        POST,
        "/v1/e/curated_poll_edit",
        &broadcaster(),
        Some(r#"{"id":"q00","name":"Renamed"}"#),
    )
    .await;
    assert_eq!(
        (q["name"].as_str(), q["state"].as_str()),
        (Some("Renamed"), Some("state-unlocked"))
    );
    assert_eq!(
        q["options"].as_array().unwrap().len(),
        2,
        "options kept when not given"
    );
    // Delete (with a body); then there is room for one more.
    refused(
        &r,
        DELETE,
        "/v1/e/curated_poll_edit",
        &viewer("1"),
        Some(r#"{"id":"q00"}"#),
        StatusCode::FORBIDDEN,
    )
    .await;
    ok(
        &r,
        DELETE,
        "/v1/e/curated_poll_edit",
        &admin(),
        Some(r#"{"id":"q00"}"#),
    )
    .await;
    ok(
        &r,
        POST,
        "/v1/e/curated_poll_edit",
        &admin(),
        Some(&question("q64")),
    )
    .await;
    let all = ok(&r, GET, "/v1/e/curated_poll", &admin(), None).await;
    assert_eq!(all["questions"].as_array().unwrap().len(), 64);
    assert!(
        all["questions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|q| q["id"] != "q00")
    );
}

/// DynamoDB round trips per aggregate request (issue #4's targets: POST vote
/// ≤ 2, GET vote 1, POST rank ≤ 2, POST accumulate 1; issue #16 adds one to
/// a viewer's first vote or rank in a poll and to every accumulate: the
/// budget that stops one viewer flooding the extension, a conditional
/// UpdateItem, which a process skips for a poll it has seen that viewer in;
/// issue #13 adds one to every vote in a channel: the GetItem of a GameLink
/// poll's rules, made beside the budget).
#[tokio::test]
async fn dynamodb_round_trips_per_request() {
    let Some((store, rt)) =
        testing::dynamo_store("aggregate dynamodb_round_trips_per_request").await
    else {
        return;
    };
    let (app, _) = testing::app(store, Env::Sandbox);
    let r = medkit_aggregate::router(app);
    let cases: Vec<(Method, &str, String, Option<&str>, usize)> = vec![
        (
            POST,
            "/v1/e/vote?id=p",
            viewer("1"),
            Some(r#"{"value":1}"#),
            4,
        ),
        (
            POST,
            "/v1/e/vote?id=p",
            viewer("1"),
            Some(r#"{"value":2}"#),
            3,
        ),
        (GET, "/v1/e/vote?id=p", viewer("1"), None, 1),
        (
            POST,
            "/v1/e/rank?id=r",
            viewer("1"),
            Some(r#"{"key":"x"}"#),
            3,
        ),
        (
            POST,
            "/v1/e/rank?id=r",
            viewer("1"),
            Some(r#"{"key":"y"}"#),
            2,
        ),
        (
            POST,
            "/v1/e/accumulate?id=a",
            viewer("1"),
            Some(r#"{"n":1}"#),
            2,
        ),
        (GET, "/v1/e/accumulate?id=a", broadcaster(), None, 1),
    ];
    for (method, uri, auth, body, expected) in cases {
        rt.reset();
        ok(&r, method.clone(), uri, &auth, body).await;
        let n = rt.get();
        println!("round trips: {method} {uri} = {n}");
        assert_eq!(n, expected, "{method} {uri}");
    }
    rt.reset();
    ok(&r, GET, "/v1/e/rank?id=r", &viewer("1"), None).await;
    println!(
        "round trips: GET rank = {} (one Query per count shard and a GetItem of the ranking's generation, in parallel)",
        rt.get()
    );
    assert_eq!(rt.get(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vote_logs_are_bounded() {
    use medkit::aggregate::AggKey;
    use medkit::aggregate::vote::Ballot;
    use medkit::store::AggregateStore;
    let (app, _) = testing::app(EmbeddedStore::in_memory(), Env::Sandbox);
    let poll = AggKey::for_caller(
        &medkit::ids::ClientId::parse(testing::CLIENT_ID).unwrap(),
        Some(&medkit::ids::ChannelId::parse("100").unwrap()),
        &medkit::ids::AggregateId::parse("big").unwrap(),
    )
    .unwrap();
    let total = medkit_aggregate::MAX_LOG_ENTRIES + 10;
    let now = medkit::clock::now_secs();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in 0..10 {
        let (app, poll) = (app.clone(), poll.clone());
        tasks.spawn(async move {
            for v in (chunk..total).step_by(10) {
                let b = Ballot {
                    voter: format!("V{v}"),
                    user_id: String::new(),
                    value: 1,
                    weight: 1,
                    cast_at: now,
                    bucket: now + 3600,
                };
                app.store.cast_vote(&poll, b).await.unwrap();
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let r = medkit_aggregate::router(app);
    let logs = ok(&r, GET, "/v1/e/vote_logs?id=big", &admin(), None).await;
    assert_eq!(
        logs["result"].as_array().unwrap().len(),
        medkit_aggregate::MAX_LOG_ENTRIES
    );
    assert_eq!(logs["truncated"], true);
    assert_eq!(logs["total"], total);
    assert_eq!(
        ok(&r, GET, "/v1/e/vote?id=big", &admin(), None).await["count"],
        total
    );
}
