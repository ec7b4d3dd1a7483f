//! Who receives a send, and the parts a big fan-out is cut into.

use crate::ids::{ChannelId, ClientId, ViewerId};

/// Who receives a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipients {
    /// Every connection on a channel.
    Channel(ChannelId),
    /// One viewer's connections on a channel.
    ChannelViewer(ChannelId, ViewerId),
    /// One viewer's connections on every channel.
    Viewer(ViewerId),
    /// Every connection of the extension.
    Extension,
}

/// One part of a fan-out that a worker delivers on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub client_id: ClientId,
    pub part: JobPart,
    pub frame: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobPart {
    Channel(ChannelId),
    Shard(u32),
}
