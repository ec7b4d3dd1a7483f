//! Every sample event in events/auth goes through the Lambda entry
//! (lambda_http's adapter around this function's router) and succeeds.

use medkit::store::embedded::EmbeddedStore;
use medkit::testing::{invoke, sample_app, sample_events};

#[tokio::test]
async fn sample_events_run_through_the_lambda_entry() {
    let router = medkit_auth::router(sample_app(EmbeddedStore::in_memory()));
    let events = sample_events("auth");
    assert!(events.len() >= 5, "one event per route family");
    for (name, event) in events {
        let (status, body) = invoke(&router, &event).await;
        assert_eq!(status, 200, "{name}: {body}");
        match name.as_str() {
            "01-authtoken-post.json" | "04-pin-post.json" => {
                assert!(body["token"].is_string(), "{name}")
            }
            // The source IP comes from API Gateway's request context, anonymized.
            "02-user-info-get.json" => assert_eq!(body["ip_address"], "203.0.113.0"),
            "03-user-ids-get.json" => assert_eq!(body["results"][0]["twitch_id"], "2002"),
            "07-gamelink-token-post.json" => {
                assert_eq!(body["token"].as_str().map(str::len), Some(6), "{body}")
            }
            _ => {}
        }
    }
}
