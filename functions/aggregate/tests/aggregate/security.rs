//! Security findings of issue #16 that the aggregate function answers, on
//! both stores: the embedded one always, DynamoDB when DynamoDB Local runs.

use axum::http::{Method, StatusCode};
use medkit::auth::Role;
use medkit::env::Env;
use medkit::store::Store;
use medkit::store::embedded::EmbeddedStore;
use medkit::testing::{self, bearer, ok, refused, token};
use serde_json::json;

/// Finding 3: `GET accumulate?id=global…` by the broadcaster of any channel
/// returned every channel's entries (user ids and data). A broadcaster now
/// reads its own channel's entries only, `global…` ids included; the
/// extension (admin, backend) reads every channel's.
async fn a_broadcaster_reads_only_its_own_channels_entries<S: Store>(store: S) {
    let r = medkit_aggregate::router(testing::app(store, Env::Sandbox).0);
    let viewer_pa = bearer(&token(Role::Viewer, "PA", Some("501")));
    let secret = json!({"email": "viewer@example.com"}).to_string();
    for id in ["global-signups", "signups"] {
        let uri = format!("/v1/e/accumulate?id={id}");
        ok(&r, Method::POST, &uri, &viewer_pa, Some(&secret)).await;
        let read = |auth: String| {
            let (r, uri) = (&r, &uri);
            async move { ok(r, Method::GET, uri, &auth, None).await["data"].clone() }
        };
        let other = read(bearer(&token(Role::Broadcaster, "PZ", Some("PZ")))).await;
        assert_eq!(
            other,
            json!([]),
            "{id}: another channel's broadcaster sees nothing"
        );
        let own = read(bearer(&token(Role::Broadcaster, "PA", Some("PA")))).await;
        assert_eq!(own.as_array().unwrap().len(), 1, "{id}: {own}");
        assert_eq!(own[0]["data"]["email"], "viewer@example.com");
        let all = read(bearer(&token(Role::Admin, "PZ", None))).await;
        assert_eq!(
            all.as_array().unwrap().len(),
            1,
            "{id}: the extension reads all"
        );
        assert_eq!(all[0]["channel_id"], "PA");
    }
}

#[tokio::test]
async fn a_broadcaster_reads_only_its_own_channels_entries_embedded() {
    a_broadcaster_reads_only_its_own_channels_entries(EmbeddedStore::in_memory()).await;
}

#[tokio::test]
async fn a_broadcaster_reads_only_its_own_channels_entries_dynamodb() {
    if let Some((store, _)) =
        testing::dynamo_store("a_broadcaster_reads_only_its_own_channels_entries_dynamodb").await
    {
        a_broadcaster_reads_only_its_own_channels_entries(store).await;
    }
}

fn viewer(channel: &str, user: &str) -> String {
    bearer(&token(Role::Viewer, channel, Some(user)))
}

/// Waits for the start of a fresh window of `secs` if fewer than `margin`
/// seconds of the current one are left, so a test's requests share one.
async fn early_in_window(secs: i64, margin: i64) {
    let into = medkit::clock::now_secs() % secs;
    if into > secs - margin {
        tokio::time::sleep(std::time::Duration::from_secs((secs - into + 1) as u64)).await;
    }
}

/// Finding 6: one anonymous viewer posted 1,000 accumulate entries in half a
/// second, pushing a legitimate entry out of `GET accumulate?start=0` (the
/// newest 1,000, no way back), and created 2,000 polls and 2,000 rankings
/// in 2.2 s. A viewer now adds at most 10 entries per id per minute, takes
/// part in at most 50 polls and rankings per hour, and `before=` pages back.
async fn one_viewer_cannot_flood_shared_data<S: Store>(store: S) {
    let r = medkit_aggregate::router(testing::app(store, Env::Sandbox).0);
    early_in_window(60, 20).await;
    let flooder = viewer("F", "666");
    let entry = json!({"spam": true}).to_string();
    for _ in 0..10 {
        ok(
            &r,
            Method::POST,
            "/v1/e/accumulate?id=wall",
            &flooder,
            Some(&entry),
        )
        .await;
    }
    let reason = refused(
        &r,
        Method::POST,
        "/v1/e/accumulate?id=wall",
        &flooder,
        Some(&entry),
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    assert!(reason.contains("10 entries"), "{reason}");
    // Others still write; the extension is not limited.
    ok(
        &r,
        Method::POST,
        "/v1/e/accumulate?id=wall",
        &viewer("F", "7"),
        Some(r#"{"hi":1}"#),
    )
    .await;
    let admin = bearer(&token(Role::Admin, "F", None));
    for _ in 0..12 {
        ok(
            &r,
            Method::POST,
            "/v1/e/accumulate?id=wall",
            &admin,
            Some(&entry),
        )
        .await;
    }
    // Paging backwards reaches the oldest entry.
    let caster = bearer(&token(Role::Broadcaster, "F", Some("F")));
    let all = ok(&r, Method::GET, "/v1/e/accumulate?id=wall", &caster, None).await["data"].clone();
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 23);
    let pivot = all[5]["observed"].as_i64().unwrap();
    let older = ok(
        &r,
        Method::GET,
        &format!("/v1/e/accumulate?id=wall&before={pivot}"),
        &caster,
        None,
    )
    .await["data"]
        .clone();
    assert!(
        older
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["observed"].as_i64().unwrap() < pivot)
    );
    assert!(!older.as_array().unwrap().is_empty());
    refused(
        &r,
        Method::GET,
        "/v1/e/accumulate?id=wall&before=later",
        &caster,
        None,
        StatusCode::BAD_REQUEST,
    )
    .await;

    // Polls and rankings: 50 distinct per hour, changing a vote is free.
    early_in_window(3600, 20).await;
    let vote = json!({"value": 1}).to_string();
    for i in 0..30 {
        ok(
            &r,
            Method::POST,
            &format!("/v1/e/vote?id=p{i}"),
            &flooder,
            Some(&vote),
        )
        .await;
    }
    for i in 0..20 {
        let body = json!({"key": "k"}).to_string();
        ok(
            &r,
            Method::POST,
            &format!("/v1/e/rank?id=r{i}"),
            &flooder,
            Some(&body),
        )
        .await;
    }
    let reason = refused(
        &r,
        Method::POST,
        "/v1/e/vote?id=p-new",
        &flooder,
        Some(&vote),
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    assert!(reason.contains("polls and rankings"), "{reason}");
    ok(
        &r,
        Method::POST,
        "/v1/e/vote?id=p3",
        &flooder,
        Some(r#"{"value": 2}"#),
    )
    .await;
    let (s, _) = medkit::testing::call(
        &r,
        Method::POST,
        "/v1/e/rank?id=r-new",
        Some(&flooder),
        Some(r#"{"key": "k"}"#),
    )
    .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    // Nothing of the refused ones was written; other viewers are unaffected.
    let totals = ok(
        &r,
        Method::GET,
        "/v1/e/vote?id=p-new",
        &viewer("F", "7"),
        None,
    )
    .await;
    assert_eq!(totals["count"], 0, "{totals}");
    ok(
        &r,
        Method::POST,
        "/v1/e/vote?id=p-new",
        &viewer("F", "7"),
        Some(&vote),
    )
    .await;
}

#[tokio::test]
async fn one_viewer_cannot_flood_shared_data_embedded() {
    one_viewer_cannot_flood_shared_data(EmbeddedStore::in_memory()).await;
}

#[tokio::test]
async fn one_viewer_cannot_flood_shared_data_dynamodb() {
    if let Some((store, _)) =
        testing::dynamo_store("one_viewer_cannot_flood_shared_data_dynamodb").await
    {
        one_viewer_cannot_flood_shared_data(store).await;
    }
}
