//! What every handler receives: one `App` per process, built once at init.

use std::sync::Arc;

use crate::auth::Env;
use crate::config::Expiry;
use crate::notify::Notifier;
use crate::registry::Registry;

pub struct App<S> {
    pub env: Env,
    pub registry: Registry,
    pub store: S,
    pub notifier: Arc<dyn Notifier>,
    pub expiry: Expiry,
    pub tokens: crate::auth::TokenCache,
}

pub type SharedApp<S> = Arc<App<S>>;

/// The app a Lambda function runs: configuration from the environment and the
/// DynamoDB store. Fails at init, naming the variable, when configuration is bad.
pub async fn from_env()
-> Result<SharedApp<crate::store::dynamo::DynamoStore>, crate::config::ConfigError> {
    let cfg = crate::config::LambdaConfig::from_env()?;
    tracing::info!(env = cfg.env.as_str(), extensions = ?cfg.registry, tables = ?cfg.tables, "configured");
    let store = crate::store::dynamo::DynamoStore::connect(None, cfg.tables).await;
    Ok(Arc::new(App {
        env: cfg.env,
        registry: cfg.registry,
        store,
        notifier: Arc::new(crate::notify::NoopNotifier),
        expiry: cfg.expiry,
        tokens: Default::default(),
    }))
}
