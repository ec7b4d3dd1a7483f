//! What every handler receives: one `App` per process, built once at init by
//! a composition root (`lambda::app` in a Lambda, the dev server, tests).

use std::sync::Arc;

use crate::auth::{Caller, TokenCache};
use crate::delivery::fanout::Fanout;
use crate::delivery::timers::TimerQueue;
use crate::delivery::{Notifier, Poster, Relay};
use crate::env::Env;
use crate::error::ApiError;
use crate::expiry::Expiry;
use crate::registry::Registry;
use crate::store::AuthStore;

pub struct App<S> {
    pub env: Env,
    pub registry: Registry,
    pub store: S,
    pub notifier: Arc<dyn Notifier>,
    /// How frames reach WebSocket connections (broadcasts and events).
    pub poster: Arc<dyn Poster>,
    /// Where timers wait (an SQS queue on AWS); None: in process (`timers`).
    pub timers: Option<Arc<dyn TimerQueue>>,
    pub expiry: Expiry,
    pub tokens: TokenCache,
    /// Sends and events also go to Twitch's Extension PubSub (None: off).
    pub relay: Option<Arc<dyn Relay>>,
}

pub type SharedApp<S> = Arc<App<S>>;

impl<S> App<S> {
    /// The fan-out over this app's connections and poster.
    pub fn fanout(&self) -> Fanout<'_, S> {
        Fanout {
            store: &self.store,
            poster: &*self.poster,
            relay: self.relay.as_deref(),
        }
    }
}

impl<S: AuthStore> App<S> {
    /// The caller an `Authorization` value (`<client_id> <jwt>`) proves: the
    /// same checks for REST requests and WebSocket connects.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Caller, ApiError> {
        let mut caller = self.tokens.verify(&self.registry, self.env, header)?;
        if let Some(token_id) = &caller.pin_token {
            // A PIN-issued token acts only once a broadcaster validated its PIN.
            let channel = self
                .store
                .pin_token_channel(&caller.client_id, token_id)
                .await?;
            caller.channel_id = Some(channel.ok_or_else(|| {
                ApiError::unauthorized("this PIN token is not validated yet, or was revoked")
            })?);
        }
        Ok(caller)
    }
}
