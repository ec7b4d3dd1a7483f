//! The composition root of a Lambda function: configuration from the
//! environment, the DynamoDB store, delivery through the Management API.
//! Every function's `main` is a call to [`run_http`] (HTTP API functions) or
//! [`init`] followed by its own event loop (WebSocket and stream functions).

use std::sync::Arc;

use crate::app::{App, SharedApp};
use crate::config::{ConfigError, LambdaConfig, require_set};
use crate::delivery::fanout::FanoutNotifier;
use crate::delivery::local::{NoPoster, NoopNotifier};
use crate::delivery::management::ManagementPoster;
use crate::delivery::sqs::SqsTimers;
use crate::delivery::timers::TimerQueue;
use crate::delivery::twitch::{QueueingRelay, TwitchConfig, TwitchRelay};
use crate::delivery::{Notifier, Poster, Relay};
use crate::registry::Registry;
use crate::store::dynamo::DynamoStore;

/// What a Lambda entry point returns.
pub type Error = lambda_http::Error;

/// The app a Lambda function runs: configuration from the environment and the
/// DynamoDB store. Fails at init, naming the variable, when configuration is bad.
/// With `MEDKIT_WS_ENDPOINT` set, events reach WebSocket clients through the
/// Management API; without it they are dropped (logged at debug). A function
/// that sets timers names its queue adapter (`timers`, [`SQS_TIMERS`]); the
/// others link no queue client at all.
pub async fn from_env(
    timers: TimerWiring,
    relay: RelayWiring,
) -> Result<SharedApp<DynamoStore>, ConfigError> {
    let cfg = LambdaConfig::from_env()?;
    tracing::info!(env = cfg.env.as_str(), extensions = ?cfg.registry, tables = ?cfg.tables, ws = ?cfg.ws_endpoint, timers = ?cfg.timers_queue, twitch_relay = ?cfg.twitch, "configured");
    let conf = crate::aws::lambda_config()?;
    let store =
        DynamoStore::new(aws_sdk_dynamodb::Client::new(&conf), cfg.tables).with_fanout_queue();
    // Every function that sends queues relay jobs; the fan-out worker posts them.
    let relay: Option<Arc<dyn Relay>> = match &cfg.twitch {
        Some(twitch) => Some(match relay {
            Some(deliver) => deliver(twitch, &cfg.registry, store.clone()).map_err(|reason| {
                ConfigError::Invalid {
                    var: crate::config::ENV_TWITCH_RELAY,
                    reason,
                }
            })?,
            None => Arc::new(QueueingRelay::new(twitch)),
        }),
        None => None,
    };
    let (poster, notifier): (Arc<dyn Poster>, Arc<dyn Notifier>) = match &cfg.ws_endpoint {
        Some(url) => {
            let poster: Arc<dyn Poster> = Arc::new(ManagementPoster::from_conf(&conf, url));
            let notifier = Arc::new(FanoutNotifier {
                store: store.clone(),
                poster: poster.clone(),
                env: cfg.env,
                relay: relay.clone(),
            });
            (poster, notifier)
        }
        None => (Arc::new(NoPoster), Arc::new(NoopNotifier)),
    };
    Ok(Arc::new(App {
        env: cfg.env,
        registry: cfg.registry,
        store,
        notifier,
        poster,
        timers: match (timers, cfg.timers_queue.as_deref()) {
            (Some(queue), Some(url)) => Some(queue(&conf, url)),
            (Some(_), None) => {
                tracing::warn!(
                    "MEDKIT_TIMERS_QUEUE_URL is not set: timers sleep in process, and a frozen \
                     Lambda may never run them"
                );
                None
            }
            (None, _) => None,
        },
        expiry: cfg.expiry,
        tokens: Default::default(),
        relay,
    }))
}

/// Whether a function posts relay jobs to Twitch: None for every function
/// but the fan-out worker ([`HELIX`]); they only queue relay jobs, and so
/// link no HTTP client and no root certificates of Twitch's.
pub type RelayWiring =
    Option<fn(&TwitchConfig, &Registry, DynamoStore) -> Result<Arc<dyn Relay>, String>>;

/// Relay jobs posted to Helix (the fan-out worker).
pub const HELIX: RelayWiring = Some(helix_relay);

fn helix_relay(
    config: &TwitchConfig,
    registry: &Registry,
    store: DynamoStore,
) -> Result<Arc<dyn Relay>, String> {
    Ok(Arc::new(
        TwitchRelay::new(config, registry, store)?.with_helix(),
    ))
}

/// How a function's timers are kept: None for a function that sets none,
/// [`SQS_TIMERS`] for one that does.
pub type TimerWiring = Option<fn(&aws_types::SdkConfig, &str) -> Arc<dyn TimerQueue>>;

/// Timers on the SQS queue at `MEDKIT_TIMERS_QUEUE_URL`.
pub const SQS_TIMERS: TimerWiring = Some(sqs_timers);

fn sqs_timers(conf: &aws_types::SdkConfig, url: &str) -> Arc<dyn TimerQueue> {
    Arc::new(SqsTimers::from_conf(conf, url))
}

/// What every function does at init: JSON logs, a check of the variables
/// it cannot work without (beyond those every function reads), then the app.
/// A failure is logged naming the variable and returned, so Lambda reports
/// an init error.
pub async fn init(
    required: &[&'static str],
    timers: TimerWiring,
) -> Result<SharedApp<DynamoStore>, Error> {
    init_with(required, timers, None).await
}

/// [`init`] for the function that posts relay jobs ([`HELIX`]).
pub async fn init_with(
    required: &[&'static str],
    timers: TimerWiring,
    relay: RelayWiring,
) -> Result<SharedApp<DynamoStore>, Error> {
    crate::logging::init_json();
    let app = async {
        for var in required {
            require_set(var)?;
        }
        from_env(timers, relay).await
    }
    .await
    .inspect_err(|e| tracing::error!(error = %e, "init failed"))?;
    Ok(app)
}

/// Runs an HTTP API function: [`init`], then every API Gateway event through
/// the router `router` builds over the app.
pub async fn run_http(
    required: &[&'static str],
    router: impl FnOnce(SharedApp<DynamoStore>) -> axum::Router,
) -> Result<(), Error> {
    run_http_with(required, None, router).await
}

/// [`run_http`] for a function that sets timers.
pub async fn run_http_with(
    required: &[&'static str],
    timers: TimerWiring,
    router: impl FnOnce(SharedApp<DynamoStore>) -> axum::Router,
) -> Result<(), Error> {
    let app = init(required, timers).await?;
    let router = router(app).layer(axum::middleware::from_fn(within_deadline));
    lambda_http::run(router).await
}

/// Runs a request until its invocation's deadline less a margin to answer,
/// so the store's retries stop in time (see `budget`).
async fn within_deadline(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let deadline = req
        .extensions()
        .get::<lambda_http::Context>()
        .map(|c| crate::budget::from_invocation_deadline(c.deadline));
    match deadline {
        Some(d) => crate::budget::until(d, next.run(req)).await,
        None => next.run(req).await,
    }
}

/// What a non-HTTP function made of one event: its response, and the route
/// and status its invocation's log line names.
pub struct Handled<R> {
    pub response: R,
    pub route: String,
    pub status: u16,
}

/// Runs a function whose events are not HTTP requests (WebSocket routes,
/// stream batches): [`init`], then every event through `handle`, with one
/// log line per invocation like the HTTP functions' request lines.
pub async fn run_events<E, R, F, Fut>(
    required: &[&'static str],
    timers: TimerWiring,
    handle: F,
) -> Result<(), Error>
where
    E: serde::de::DeserializeOwned + Send,
    R: serde::Serialize + Send,
    F: Fn(SharedApp<DynamoStore>, E) -> Fut,
    Fut: std::future::Future<Output = Handled<R>> + Send,
{
    run_events_with(required, timers, None, handle).await
}

/// [`run_events`] for the function that posts relay jobs ([`HELIX`]).
pub async fn run_events_with<E, R, F, Fut>(
    required: &[&'static str],
    timers: TimerWiring,
    relay: RelayWiring,
    handle: F,
) -> Result<(), Error>
where
    E: serde::de::DeserializeOwned + Send,
    R: serde::Serialize + Send,
    F: Fn(SharedApp<DynamoStore>, E) -> Fut,
    Fut: std::future::Future<Output = Handled<R>> + Send,
{
    use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
    let app = init_with(required, timers, relay).await?;
    let handle = &handle;
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<E>| async move {
        let started = std::time::Instant::now();
        // Retries (the store's, the Twitch relay's) stop in time to answer.
        let deadline = crate::budget::from_invocation_deadline(event.context.deadline);
        let out = crate::budget::until(deadline, handle(app.clone(), event.payload)).await;
        crate::logging::invocation(&event.context.request_id, &out.route, out.status, started);
        Ok::<R, Error>(out.response)
    }))
    .await
}

/// The partial-batch response of a stream or queue function
/// (`ReportBatchItemFailures`): the records to deliver again.
#[derive(Debug, Default, serde::Serialize, PartialEq, Eq)]
pub struct BatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<ItemFailure>,
}

#[derive(Debug, serde::Serialize, PartialEq, Eq)]
pub struct ItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

impl BatchResponse {
    /// From each record's outcome: `Some(its id)` to deliver it again.
    pub fn of(outcomes: impl IntoIterator<Item = Option<String>>) -> Self {
        BatchResponse {
            batch_item_failures: outcomes
                .into_iter()
                .flatten()
                .map(|item_identifier| ItemFailure { item_identifier })
                .collect(),
        }
    }

    /// Logged as `route` with 200 when every record was done, 207 when some
    /// are handed back.
    pub fn handled(self, route: &str) -> Handled<Self> {
        let status = if self.batch_item_failures.is_empty() {
            200
        } else {
            207
        };
        Handled {
            response: self,
            route: route.into(),
            status,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    /// A request runs until its invocation's deadline less the margin to
    /// answer; one without an invocation (not on Lambda) has no deadline.
    #[tokio::test]
    async fn a_request_gets_its_invocations_deadline() {
        let app = axum::Router::new()
            .route(
                "/",
                get(|| async { format!("{:?}", crate::budget::left().map(|l| l.as_secs())) }),
            )
            .layer(axum::middleware::from_fn(within_deadline));
        let in_12s =
            SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(12);
        let mut context = lambda_http::Context::default();
        context.deadline = in_12s.as_millis() as u64;
        let mut req = http::Request::new(axum::body::Body::empty());
        req.extensions_mut().insert(context);
        let left = body_text(app.clone().oneshot(req).await.unwrap()).await;
        assert!(left == "Some(10)" || left == "Some(11)", "{left}");
        let plain = http::Request::new(axum::body::Body::empty());
        assert_eq!(body_text(app.oneshot(plain).await.unwrap()).await, "None");
    }

    async fn body_text(r: axum::response::Response) -> String {
        use http_body_util::BodyExt;
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }
}
