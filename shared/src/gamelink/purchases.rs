//! Purchases as games hear them (`schema/purchase.h`): a game subscribes to
//! `twitchPurchaseBits` for one SKU or `*`, and receives each purchase of
//! its channel as an update with target `twitchPurchaseBits` whose data is
//! the library's `Transaction`.

use super::push::{Push, fitting};
use crate::ids::ChannelId;
use crate::purchases::Purchase;
use crate::realtime::subscription::Subscription;

/// The update target the library dispatches purchases on.
pub const TARGET: &str = "twitchPurchaseBits";
/// Longest SKU a subscription names.
pub const MAX_SKU: usize = crate::purchases::MAX_FIELD;

/// The subscribers of a channel's purchases of `sku` (or `*`: all).
pub fn subscription(channel: &ChannelId, sku: &str) -> Subscription {
    Subscription::channel(channel, format!("purchase:{sku}"))
}

/// The updates a new purchase sends: to the games subscribed to its SKU and
/// to those subscribed to every SKU (a game subscribed to both hears it on
/// each, and tells them apart by `id`).
pub fn updates(channel: &ChannelId, p: &Purchase, now_ms: i64) -> Vec<Push> {
    [p.sku.as_str(), "*"]
        .into_iter()
        .filter_map(|sku| fitting(subscription(channel, sku), TARGET, &p.game_body(), now_ms))
        .collect()
}
