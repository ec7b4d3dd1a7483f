//! Events the backend emits for viewers (state updates, vote updates).

use serde_json::Value;

use crate::gamelink::push::Push;
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
    /// The GameLink update that goes with it, if any (a channel's state
    /// write reaches its viewers and its subscribed games in one job).
    pub games: Option<Push>,
}
