//! The send-rate limit: sends per budget per fixed window. Each sender class
//! has a budget of its own (a channel's broadcasters, the extension, one
//! viewer's own whispers), so no viewer can spend a channel's. Both adapters
//! count in the same windows.

use crate::ids::{ChannelId, ViewerId};
use crate::limits::SENDS;

/// Sends per budget per window (429 past it): `limits::SENDS`.
pub const SENDS_PER_WINDOW: u32 = SENDS.max;
pub const RATE_WINDOW_SECS: i64 = SENDS.window_secs;

/// The start of the rate window `now` falls in (both adapters key counts by it).
pub fn rate_window(now: i64) -> i64 {
    SENDS.window(now)
}

/// Seconds from `now` until its window ends (when a refused sender may retry).
pub fn seconds_left(now: i64) -> i64 {
    SENDS.seconds_left(now)
}

/// Whose budget a send spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget<'a> {
    /// Broadcasts and whispers to a channel by its broadcaster or the extension.
    Channel(&'a ChannelId),
    /// Extension-wide broadcasts and whispers.
    Extension,
    /// A viewer's `whisper_self` (to their own other tabs).
    Viewer(&'a ViewerId),
}

impl Budget<'_> {
    /// The key the store counts under. Ids never contain `|`, so the three
    /// kinds never meet.
    pub fn key(&self) -> String {
        match self {
            Budget::Channel(ch) => format!("c|{ch}"),
            Budget::Extension => "x".into(),
            Budget::Viewer(v) => format!("v|{v}"),
        }
    }

    /// Whose sends, for a refusal's reason.
    pub fn whose(&self) -> &'static str {
        match self {
            Budget::Channel(_) => "on this channel",
            Budget::Extension => "extension-wide",
            Budget::Viewer(_) => "of your own",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_never_share_a_key() {
        let ch = ChannelId::parse("7").unwrap();
        let v = ViewerId::parse("7").unwrap();
        let keys = [
            Budget::Channel(&ch).key(),
            Budget::Extension.key(),
            Budget::Viewer(&v).key(),
        ];
        assert_eq!(keys, ["c|7", "x", "v|7"]);
    }
}
