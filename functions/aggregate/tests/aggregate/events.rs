//! Every sample event in events/aggregate goes through the Lambda entry
//! (lambda_http's adapter around this function's router) and succeeds, and
//! together they tell a story whose figures are checked.

use medkit::store::embedded::EmbeddedStore;
use medkit::testing::{invoke, sample_app, sample_events};
use serde_json::json;

#[tokio::test]
async fn sample_events_run_through_the_lambda_entry() {
    let router = medkit_aggregate::router(sample_app(EmbeddedStore::in_memory()));
    let events = sample_events("aggregate");
    assert!(events.len() >= 14, "one event per route");
    let mut bodies = std::collections::HashMap::new();
    for (name, event) in events {
        let (status, body) = invoke(&router, &event).await;
        assert_eq!(status, 200, "{name}: {body}");
        bodies.insert(name, body);
    }
    let vote = &bodies["03-vote-get.json"];
    assert_eq!(
        (vote["count"].clone(), vote["sum"].clone()),
        (json!(4), json!(17))
    );
    assert_eq!(vote["vote"], 2);
    assert_eq!(
        bodies["04-vote-logs-get.json"]["result"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        bodies["06-rank-get.json"],
        json!({"data": [{"key": "pizza", "score": 1}]})
    );
    assert_eq!(
        bodies["08-accumulate-get.json"]["data"][0]["data"],
        json!({"idea": "more cats"})
    );
    assert_eq!(
        bodies["10-curated-poll-state-post.json"],
        json!({"state": "state-unlocked"})
    );
    assert_eq!(
        bodies["12-curated-poll-get.json"]["questions"][0]["results"],
        json!({"you": "red"})
    );
    assert_eq!(bodies["13-team-membership-get.json"], json!({"id": "1001"}));
    let board = &bodies["14-curated-poll-leaderboard-get.json"]["leaderboard"];
    assert_eq!(board[0]["questions"]["q1"]["team_votes"], 1);
}

#[tokio::test]
async fn a_malformed_event_answers_json_with_a_reason() {
    let router = medkit_aggregate::router(sample_app(EmbeddedStore::in_memory()));
    let (_, vote) = sample_events("aggregate")
        .into_iter()
        .find(|(n, _)| n.starts_with("01-"))
        .unwrap();
    let mut event: serde_json::Value = serde_json::from_str(&vote).unwrap();
    event["body"] = json!("{\"value\": \"lots\"}");
    let (status, body) = invoke(&router, &event.to_string()).await;
    assert_eq!(status, 400);
    assert!(body["reason"].as_str().unwrap().contains("integer"));
}
