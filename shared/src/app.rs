//! What every handler receives: one `App` per process, built once at init.

use std::sync::Arc;

use crate::auth::Env;
use crate::config::Expiry;
use crate::notify::Notifier;
use crate::realtime::fanout::{Fanout, FanoutNotifier, NoPoster, Poster};
use crate::realtime::management::ManagementPoster;
use crate::registry::Registry;

pub struct App<S> {
    pub env: Env,
    pub registry: Registry,
    pub store: S,
    pub notifier: Arc<dyn Notifier>,
    /// How frames reach WebSocket connections (broadcasts and events).
    pub poster: Arc<dyn Poster>,
    pub expiry: Expiry,
    pub tokens: crate::auth::TokenCache,
}

pub type SharedApp<S> = Arc<App<S>>;

impl<S> App<S> {
    /// The fan-out over this app's connections and poster.
    pub fn fanout(&self) -> Fanout<'_, S> {
        Fanout {
            store: &self.store,
            poster: &*self.poster,
        }
    }
}

/// The app a Lambda function runs: configuration from the environment and the
/// DynamoDB store. Fails at init, naming the variable, when configuration is bad.
/// With `MEDKIT_WS_ENDPOINT` set, events reach WebSocket clients through the
/// Management API; without it they are dropped (logged at debug).
pub async fn from_env()
-> Result<SharedApp<crate::store::dynamo::DynamoStore>, crate::config::ConfigError> {
    use crate::store::dynamo::{DynamoStore, sdk_config};
    let cfg = crate::config::LambdaConfig::from_env()?;
    tracing::info!(env = cfg.env.as_str(), extensions = ?cfg.registry, tables = ?cfg.tables, ws = ?cfg.ws_endpoint, "configured");
    let conf = sdk_config(None).await;
    let store =
        DynamoStore::new(aws_sdk_dynamodb::Client::new(&conf), cfg.tables).with_fanout_queue();
    let (poster, notifier): (Arc<dyn Poster>, Arc<dyn Notifier>) = match &cfg.ws_endpoint {
        Some(url) => {
            let poster: Arc<dyn Poster> = Arc::new(ManagementPoster::from_conf(&conf, url));
            let notifier = Arc::new(FanoutNotifier {
                store: store.clone(),
                poster: poster.clone(),
                env: cfg.env,
            });
            (poster, notifier)
        }
        None => (Arc::new(NoPoster), Arc::new(crate::notify::NoopNotifier)),
    };
    Ok(Arc::new(App {
        env: cfg.env,
        registry: cfg.registry,
        store,
        notifier,
        poster,
        expiry: cfg.expiry,
        tokens: Default::default(),
    }))
}
