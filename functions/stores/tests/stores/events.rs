//! Every sample event in events/stores goes through the Lambda entry
//! (lambda_http's adapter around this function's router) and succeeds.

use medkit::store::embedded::EmbeddedStore;
use medkit::testing::{invoke, sample_app, sample_events};
use serde_json::json;

#[tokio::test]
async fn sample_events_run_through_the_lambda_entry() {
    let router = medkit_stores::router(sample_app(EmbeddedStore::in_memory()));
    let events = sample_events("stores");
    assert!(events.len() >= 10, "one event per route family");
    let mut bodies = std::collections::HashMap::new();
    for (name, event) in events {
        let (status, body) = invoke(&router, &event).await;
        assert_eq!(status, 200, "{name}: {body}");
        bodies.insert(name, body);
    }
    // The events form a story: what was written is read back.
    assert_eq!(
        bodies["03-channel-state-get.json"],
        json!({"round": 1, "teams": {"red": 5}})
    );
    assert_eq!(
        bodies["06-all-state-get.json"]["extension_viewer"],
        json!({"xp": 10})
    );
    assert_eq!(
        bodies["07-extension-viewer-state-multi-get.json"],
        json!({"2002": {"xp": 10}})
    );
    assert_eq!(
        bodies["11-config-get.json"]["channel"],
        json!({"theme": "dark"})
    );
    assert_eq!(bodies["13-json-store-get.json"], json!({"top": ["2002"]}));
}

#[tokio::test]
async fn a_refused_event_answers_json_with_a_reason() {
    let router = medkit_stores::router(sample_app(EmbeddedStore::in_memory()));
    let (_, viewer_get) = sample_events("stores")
        .into_iter()
        .find(|(n, _)| n.starts_with("03-"))
        .unwrap();
    // The viewer's GET turned into a POST: a viewer may not write channel state.
    let post = viewer_get
        .replace("\"GET\"", "\"POST\"")
        .replace("GET /v1", "POST /v1");
    let mut event: serde_json::Value = serde_json::from_str(&post).unwrap();
    event["body"] = json!("{\"x\":1}");
    let (status, body) = invoke(&router, &event.to_string()).await;
    assert_eq!(status, 403);
    assert!(body["reason"].is_string());
}
