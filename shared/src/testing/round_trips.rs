//! Counting DynamoDB round trips, for tests and benchmarks that assert or
//! report how many requests an operation costs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use crate::store::dynamo::{DynamoStore, Tables};

/// Counts DynamoDB requests sent (each attempt), for tests and benchmarks.
#[derive(Debug, Clone, Default)]
pub struct RoundTripCounter(Arc<AtomicUsize>);

impl RoundTripCounter {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
    pub fn reset(&self) {
        self.0.store(0, Ordering::SeqCst)
    }
}

impl Intercept for RoundTripCounter {
    fn name(&self) -> &'static str {
        "RoundTripCounter"
    }

    fn read_before_transmit(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A DynamoDB store at `endpoint` (DynamoDB Local) whose client counts its
/// round trips.
pub fn counted_dynamo_store(endpoint: &str, tables: Tables) -> (DynamoStore, RoundTripCounter) {
    let counter = RoundTripCounter::default();
    let conf = aws_sdk_dynamodb::config::Builder::from(&crate::aws::local_config(endpoint))
        .interceptor(counter.clone())
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(conf);
    (DynamoStore::new(client, tables), counter)
}
