//! Every sample event in events/codes goes through the Lambda entry
//! (lambda_http's adapter around this function's router) and succeeds.

use medkit::store::embedded::EmbeddedStore;
use medkit::testing::{invoke, sample_app, sample_events};
use serde_json::json;

#[tokio::test]
async fn sample_events_run_through_the_lambda_entry() {
    let router = medkit_codes::router(sample_app(EmbeddedStore::in_memory()));
    let events = sample_events("codes");
    assert!(events.len() >= 9, "one event per route");
    let mut bodies = std::collections::HashMap::new();
    for (name, event) in events {
        let (status, body) = invoke(&router, &event).await;
        assert_eq!(status, 200, "{name}: {body}");
        bodies.insert(name, body);
    }
    assert_eq!(bodies["03-codes-get.json"]["remaining"], json!([3]));
    assert_eq!(bodies["06-codes-eligible-get.json"]["eligible"][0], 2);
    assert_eq!(
        bodies["07-codes-redeem-post.json"],
        json!({"code": "GOLD-0001", "all_prizes": ["GOLD-0001"]})
    );
    assert_eq!(
        bodies["08-codes-redeemed-get.json"]["redeemed"][0],
        json!(["GOLD-0001"])
    );
    assert_eq!(bodies["09-codes-delete.json"], json!({"distributed": [1]}));
}
