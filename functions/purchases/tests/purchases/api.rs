//! `bits/transactions` through the router: verified receipts recorded once
//! (facts from the receipt only), forgeries and mismatches refused with
//! nothing recorded, the sandbox's unverified receipts accepted and marked,
//! the listing's roles; on both stores, with DynamoDB's round trips.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use medkit::clock::now_secs;
use medkit::env::Env;
use medkit::store::embedded::EmbeddedStore;
use medkit::store::{AuthStore, PurchaseStore};
use medkit::testing::{self, SECRET, app, bearer, call, sign_json, token};
use serde_json::{Value, json};

use medkit::auth::Role;

const CHANNEL: &str = "1001";
const PATH: &str = "/v1/e/bits/transactions";

fn receipt_claims(tx: &str, user: &str, sku: &str, cost: i64) -> Value {
    json!({"topic": "bits_transaction_receipt", "exp": now_secs() + 60, "data": {
        "transactionId": tx, "time": "2026-12-01 10:00:00.000 +0000 UTC", "userId": user,
        "product": {"domainId": "twitch.ext.testclient", "sku": sku, "displayName": "Fancy Hat",
                    "cost": {"amount": cost, "type": "bits"}}}})
}

fn receipt(tx: &str, user: &str) -> String {
    sign_json(&receipt_claims(tx, user, "hat", 100), "HS256", SECRET)
}

/// Twitch's transaction object as `onTransactionComplete` hands it over;
/// its unsigned fields deliberately say other things than the receipt.
fn body(tx: &str, receipt: &str) -> String {
    json!({"transactionId": tx, "transactionReceipt": receipt, "userId": "555",
           "displayName": "Viewer Five", "initiator": "current_user",
           "product": {"sku": "cheap", "displayName": "Cheap", "cost": {"amount": 1, "type": "bits"}}})
    .to_string()
}

fn viewer(user: &str) -> String {
    bearer(&token(Role::Viewer, CHANNEL, Some(user)))
}

async fn submissions_are_verified_and_recorded_once<S: PurchaseStore + AuthStore + Clone>(
    store: S,
    rt: Option<&testing::RoundTripCounter>,
) {
    let (app, _) = app(store.clone(), Env::Production);
    let r = medkit_purchases::router(app);
    rt.inspect(|rt| rt.reset());
    let (s, first) = call(
        &r,
        Method::POST,
        PATH,
        Some(&viewer("555")),
        Some(&body("tx-1", &receipt("tx-1", "555"))),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    if let Some(rt) = rt {
        assert_eq!(rt.get(), 1, "a first submission: one round trip");
        rt.reset();
    }
    // The receipt's facts, not the body's.
    assert_eq!(
        (first["sku"].clone(), first["cost"].clone()),
        (json!("hat"), json!(100))
    );
    assert_eq!(first["displayName"], "Fancy Hat");
    assert_eq!(first["username"], "Viewer Five");
    assert_eq!(
        (first["state"].clone(), first["sandbox"].clone()),
        (json!("received"), json!(false))
    );
    assert_eq!(first["timestamp"], 1_796_119_200_000i64);
    // Again: the same answer, nothing new.
    let (s, again) = call(
        &r,
        Method::POST,
        PATH,
        Some(&viewer("555")),
        Some(&body("tx-1", &receipt("tx-1", "555"))),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(again, first);
    if let Some(rt) = rt {
        assert_eq!(
            rt.get(),
            2,
            "a repeat: the write refused, the first record read"
        );
        rt.reset();
    }

    // The same transaction from another channel: refused.
    let elsewhere = bearer(&token(Role::Viewer, "2002", Some("555")));
    let (s, v) = call(
        &r,
        Method::POST,
        PATH,
        Some(&elsewhere),
        Some(&body("tx-1", &receipt("tx-1", "555"))),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    rt.inspect(|rt| rt.reset());

    // Forgeries and mismatches: refused, nothing recorded.
    let claims = receipt_claims("tx-bad", "555", "hat", 100);
    let mut expired = claims.clone();
    expired["exp"] = json!(now_secs() - 3600);
    let mut other_topic = claims.clone();
    other_topic["topic"] = json!("something_else");
    let mut no_data = claims.clone();
    no_data.as_object_mut().unwrap().remove("data");
    let unsigned = {
        let t = sign_json(&claims, "none", SECRET);
        let mut parts: Vec<&str> = t.split('.').collect();
        parts[2] = "";
        parts.join(".")
    };
    for (why, receipt, status) in [
        (
            "another secret",
            sign_json(&claims, "HS256", b"not the extension's secret"),
            401,
        ),
        ("alg none", unsigned, 401),
        (
            "alg HS512 in the header",
            sign_json(&claims, "HS512", SECRET),
            401,
        ),
        ("expired", sign_json(&expired, "HS256", SECRET), 401),
        (
            "another topic",
            sign_json(&other_topic, "HS256", SECRET),
            400,
        ),
        ("no data", sign_json(&no_data, "HS256", SECRET), 401),
        ("another user's", receipt("tx-bad", "777"), 403),
    ] {
        let (s, v) = call(
            &r,
            Method::POST,
            PATH,
            Some(&viewer("555")),
            Some(&body("tx-bad", &receipt)),
        )
        .await;
        assert_eq!(s.as_u16(), status, "{why}: {v}");
        assert!(v["reason"].is_string(), "{why}: {v}");
    }
    let (s, v) = call(
        &r,
        Method::POST,
        PATH,
        Some(&viewer("555")),
        Some(&body("tx-other", &receipt("tx-bad", "555"))),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "a body naming another transaction: {v}"
    );
    for bad in ["[]", "{}", r#"{"transactionReceipt": 5}"#, "not json"] {
        let (s, _) = call(&r, Method::POST, PATH, Some(&viewer("555")), Some(bad)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
    }
    let huge = json!({"transactionReceipt": receipt("tx-big", "555"), "pad": "x".repeat(2 << 20)})
        .to_string();
    let (s, _) = call(&r, Method::POST, PATH, Some(&viewer("555")), Some(&huge)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "an oversized body");
    let caster = bearer(&token(Role::Broadcaster, CHANNEL, Some(CHANNEL)));
    let (s, listed) = call(&r, Method::GET, PATH, Some(&caster), None).await;
    assert_eq!(s, StatusCode::OK, "{listed}");
    let ids: Vec<&str> = listed["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["tx-1"], "only the verified one");

    // The listing's roles.
    let (s, _) = call(&r, Method::GET, PATH, Some(&viewer("555")), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a viewer");
    let (s, _) = call(
        &r,
        Method::GET,
        &format!("{PATH}?channel_id=2002"),
        Some(&caster),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "another broadcaster's channel");
    let backend = bearer(&token(Role::Backend, "", None));
    let (s, v) = call(
        &r,
        Method::GET,
        &format!("{PATH}?channel_id={CHANNEL}"),
        Some(&backend),
        None,
    )
    .await;
    assert_eq!(
        (s, v["transactions"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(1))
    );
}

#[tokio::test]
async fn submissions_are_verified_and_recorded_once_on_the_embedded_store() {
    submissions_are_verified_and_recorded_once(EmbeddedStore::in_memory(), None).await;
}

#[tokio::test]
async fn submissions_are_verified_and_recorded_once_on_dynamodb() {
    if let Some((store, rt)) = testing::dynamo_store("purchases api").await {
        submissions_are_verified_and_recorded_once(store, Some(&rt)).await;
    }
}

/// The sandbox does not verify: the official client's `purchase()`
/// simulation (a receipt with a made-up signature) is accepted, its facts
/// from the body, and marked.
#[tokio::test]
async fn the_sandbox_accepts_an_unverified_receipt_and_marks_it() {
    let (app, _) = app(EmbeddedStore::in_memory(), Env::Sandbox);
    let r = medkit_purchases::router(app);
    let fake = format!(
        "{}.DK02m0j0HQMKsPeFIrAuVdFh5X8f0hknjEKHAjGt6B0",
        "eyJhbGciOiJIUzI1NiJ9.e30"
    );
    let (s, v) = call(
        &r,
        Method::POST,
        PATH,
        Some(&viewer("555")),
        Some(&body("test:1", &fake)),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        (v["sandbox"].clone(), v["sku"].clone(), v["cost"].clone()),
        (json!(true), json!("cheap"), json!(1))
    );
    // Production refuses the same.
    let (app, _) = medkit::testing::app(EmbeddedStore::in_memory(), Env::Production);
    let r = medkit_purchases::router(app);
    let (s, _) = call(
        &r,
        Method::POST,
        PATH,
        Some(&viewer("555")),
        Some(&body("test:1", &fake)),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

/// 1,000 distinct transactions at once: every one recorded.
#[tokio::test]
async fn a_thousand_purchases_at_once_are_all_recorded() {
    let (app, _) = app(EmbeddedStore::in_memory(), Env::Production);
    let r = Arc::new(medkit_purchases::router(app));
    let runs = (0..1000).map(|i| {
        let r = r.clone();
        tokio::spawn(async move {
            let tx = format!("tx-{i}");
            let user = format!("{}", 10_000 + i);
            let (s, _) = call(
                &r,
                Method::POST,
                PATH,
                Some(&viewer(&user)),
                Some(&body(&tx, &receipt(&tx, &user))),
            )
            .await;
            s
        })
    });
    for s in futures_join(runs).await {
        assert_eq!(s, StatusCode::CREATED);
    }
    let caster = bearer(&token(Role::Broadcaster, CHANNEL, Some(CHANNEL)));
    let (_, listed) = call(&r, Method::GET, PATH, Some(&caster), None).await;
    assert_eq!(listed["transactions"].as_array().unwrap().len(), 1000);
}

async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
