//! The sample events in events/purchases through the Lambda entry: the
//! viewer's purchase (a receipt signed with the sample secret) is recorded
//! from its receipt, and the broadcaster's listing shows it.

use medkit::store::embedded::EmbeddedStore;
use medkit::testing::{invoke, sample_app, sample_events};

#[tokio::test]
async fn sample_events_run_through_the_lambda_entry() {
    let router = medkit_purchases::router(sample_app(EmbeddedStore::in_memory()));
    let events = sample_events("purchases");
    assert_eq!(events.len(), 2);
    let (status, recorded) = invoke(&router, &events[0].1).await;
    assert_eq!(status, 201, "{recorded}");
    assert_eq!(recorded["sandbox"], false, "the sample receipt verifies");
    assert_eq!(
        (recorded["sku"].clone(), recorded["cost"].clone()),
        ("hat".into(), 100.into())
    );
    let (status, listed) = invoke(&router, &events[1].1).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["transactions"][0]["id"], "sample-tx-1");
    assert_eq!(listed["transactions"][0]["state"], "received");
}
