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
}

pub type SharedApp<S> = Arc<App<S>>;
