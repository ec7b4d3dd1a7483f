//! Test support shared by every crate's tests: stores on fresh tables.
//!
//! The DynamoDB half runs when `MEDKIT_TEST_DYNAMODB_ENDPOINT` names a
//! DynamoDB Local (the test script starts one). Without it those tests say
//! plainly that they did not run, unless `MEDKIT_REQUIRE_DYNAMODB=1` (CI),
//! where a missing endpoint fails them.

use crate::store::dynamo::{DynamoStore, RoundTripCounter, Tables};

pub const ENDPOINT_VAR: &str = "MEDKIT_TEST_DYNAMODB_ENDPOINT";
pub const REQUIRE_VAR: &str = "MEDKIT_REQUIRE_DYNAMODB";

/// A DynamoDB store on freshly created tables with a unique prefix, and a
/// counter of its round trips; None (after saying so) when not configured.
pub async fn dynamo_store(test: &str) -> Option<(DynamoStore, RoundTripCounter)> {
    let Some(endpoint) = std::env::var(ENDPOINT_VAR).ok().filter(|e| !e.is_empty()) else {
        if std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1") {
            panic!("{REQUIRE_VAR}=1 but {ENDPOINT_VAR} is not set");
        }
        eprintln!(
            "DYNAMODB TEST NOT RUN: {test} (set {ENDPOINT_VAR}, or run infra/scripts/test.sh)"
        );
        return None;
    };
    let prefix = format!("t{}-", crate::random::token_id(10));
    let (store, counter) =
        DynamoStore::connect_counted(Some(&endpoint), Tables::with_prefix(&prefix)).await;
    store
        .ensure_tables()
        .await
        .expect("create test tables in DynamoDB Local");
    counter.reset();
    Some((store, counter))
}
