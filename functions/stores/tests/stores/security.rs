//! Security findings of issue #16 that the stores function answers, each on
//! both stores: the embedded one always, DynamoDB when DynamoDB Local runs.

use axum::Router;
use axum::http::{Method, StatusCode};
use medkit::auth::Role;
use medkit::env::Env;
use medkit::store::Store;
use medkit::testing::{self, bearer, ok, refused, token};
use serde_json::{Value, json};

fn viewer() -> String {
    bearer(&token(Role::Viewer, "100", Some("7")))
}

fn router<S: Store>(store: S) -> Router {
    medkit_stores::router(testing::app(store, Env::Sandbox).0)
}

fn copies(from_to: impl Fn(usize) -> (String, String), n: usize) -> String {
    let ops: Vec<Value> = (0..n)
        .map(|i| {
            let (from, path) = from_to(i);
            json!({"op": "copy", "from": from, "path": path})
        })
        .collect();
    serde_json::to_string(&ops).unwrap()
}

/// Finding 1: a JSON Patch of copies of the root doubles the document per
/// operation. The issue's body (26 copies, about 1.1 KB) once grew the
/// process to 3.7 GB before it died; every variant is now refused with 413
/// before the document outgrows its limit, and nothing is written.
async fn doubling_copies_are_refused_and_change_nothing<S: Store>(store: S) {
    let r = router(store);
    let seeded = json!({"s": "x".repeat(1000)});
    let body = seeded.to_string();
    ok(
        &r,
        Method::POST,
        "/v1/e/viewer_state",
        &viewer(),
        Some(&body),
    )
    .await;
    let read = || async { ok(&r, Method::GET, "/v1/e/viewer_state", &viewer(), None).await };

    // The issue's body: copy the whole document into /c0 … /c25.
    let issue = copies(|i| (String::new(), format!("/c{i}")), 26);
    assert!(issue.len() < 1200, "{} bytes", issue.len());
    // Deep: each copy puts the whole document one level further down.
    let deep = copies(
        |i| (String::new(), (0..=i).map(|_| "/d").collect::<String>()),
        26,
    );
    // Wide: one 1 KB value copied to 600 keys (600 KB, over the 500 KB limit).
    let wide = copies(|i| ("/s".into(), format!("/w{i}")), 600);
    for (what, patch) in [("issue", &issue), ("deep", &deep), ("wide", &wide)] {
        let reason = refused(
            &r,
            Method::PATCH,
            "/v1/e/viewer_state",
            &viewer(),
            Some(patch),
            StatusCode::PAYLOAD_TOO_LARGE,
        )
        .await;
        assert!(reason.contains("copies more than"), "{what}: {reason}");
        assert_eq!(read().await, seeded, "{what}: nothing was written");
    }

    // Copies within the limit still work: 300 KB copied.
    let fine = copies(|i| ("/s".into(), format!("/w{i}")), 300);
    let v = ok(
        &r,
        Method::PATCH,
        "/v1/e/viewer_state",
        &viewer(),
        Some(&fine),
    )
    .await;
    assert_eq!(v.as_object().unwrap().len(), 301);
    assert_eq!(read().await, v);

    // A merge patch adds at most its own size: deep and wide ones are
    // answered like any other (here: over the limit → 413, unchanged).
    let mut deep_merge = json!("x".repeat(2000));
    for _ in 0..100 {
        deep_merge = json!({ "n": deep_merge });
    }
    let wide_merge: serde_json::Map<String, Value> = (0..300)
        .map(|i| (format!("k{i}"), json!("y".repeat(1000))))
        .collect();
    ok(
        &r,
        Method::PATCH,
        "/v1/e/viewer_state",
        &viewer(),
        Some(&deep_merge.to_string()),
    )
    .await;
    refused(
        &r,
        Method::PATCH,
        "/v1/e/viewer_state",
        &viewer(),
        Some(&Value::Object(wide_merge).to_string()),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert!(read().await.get("n").is_some());
    assert!(read().await.get("k0").is_none());
}

#[tokio::test]
async fn doubling_copies_are_refused_embedded() {
    doubling_copies_are_refused_and_change_nothing(
        medkit::store::embedded::EmbeddedStore::in_memory(),
    )
    .await;
}

#[tokio::test]
async fn doubling_copies_are_refused_dynamodb() {
    if let Some((store, _)) = testing::dynamo_store("doubling_copies_are_refused_dynamodb").await {
        doubling_copies_are_refused_and_change_nothing(store).await;
    }
}
