//! The `Notifier` port: real-time events for viewers (state updates, vote
//! updates). Delivery is best effort: a write that was accepted stays accepted
//! even if its notification cannot be sent.

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;
use tokio::sync::broadcast;

use crate::ids::{ChannelId, ClientId};

/// Who should receive an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    Channel(ChannelId),
    Extension,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub client_id: ClientId,
    pub audience: Audience,
    /// e.g. `channel_state_update`, `json_store_update:<id>`.
    pub name: String,
    pub data: Value,
}

pub type NotifyFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Object-safe so one process can pick its adapter at start-up.
pub trait Notifier: Send + Sync {
    fn notify(&self, event: Event) -> NotifyFuture<'_>;
}

/// Drops events (a function with no real-time wiring yet).
pub struct NoopNotifier;

impl Notifier for NoopNotifier {
    fn notify(&self, event: Event) -> NotifyFuture<'_> {
        tracing::debug!(event = %event.name, "notification dropped: no real-time delivery configured");
        Box::pin(async {})
    }
}

/// In-process hub: the dev server and tests subscribe to every event.
#[derive(Clone)]
pub struct LocalHub {
    tx: broadcast::Sender<Event>,
}

impl LocalHub {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(1024);
        LocalHub { tx }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

impl Default for LocalHub {
    fn default() -> Self {
        Self::new()
    }
}

impl Notifier for LocalHub {
    fn notify(&self, event: Event) -> NotifyFuture<'_> {
        // No subscribers is fine: nobody is listening.
        let _ = self.tx.send(event);
        Box::pin(async {})
    }
}
