//! Fixed-window budgets on the embedded store: in memory, per process (as
//! the dev server's sockets are).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use super::EmbeddedStore;
use crate::error::StoreError;
use crate::ids::ClientId;
use crate::limits::Limit;
use crate::store::LimitStore;

type Windows = HashMap<(ClientId, String), (i64, u32)>;
type Sets = HashMap<(ClientId, String), (i64, HashSet<String>)>;

/// Per (client, budget): when its current window ends, and that window's
/// count or the distinct items it has seen. Keyed by the end, so a full map
/// can drop every entry whose window is over, whatever its length.
#[derive(Default)]
pub(super) struct Counters {
    windows: Mutex<Windows>,
    sets: Mutex<Sets>,
}

impl Counters {
    fn lock(&self) -> MutexGuard<'_, Windows> {
        // Every update leaves the map consistent before it can panic.
        self.windows.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_sets(&self) -> MutexGuard<'_, Sets> {
        self.sets.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Entries past which a write first drops the windows that are over.
const MAX_ENTRIES: usize = 100_000;

fn window_end(limit: Limit, now: i64) -> i64 {
    limit.window(now) + limit.window_secs
}

impl LimitStore for EmbeddedStore {
    async fn spend(
        &self,
        client: &ClientId,
        budget: &str,
        limit: Limit,
        now: i64,
    ) -> Result<bool, StoreError> {
        let end = window_end(limit, now);
        let mut windows = self.limits.lock();
        if windows.len() > MAX_ENTRIES {
            windows.retain(|_, (ends, _)| *ends > now);
        }
        let entry = windows
            .entry((client.clone(), budget.to_string()))
            .or_insert((end, 0));
        if entry.0 != end {
            *entry = (end, 0);
        }
        if entry.1 >= limit.max {
            return Ok(false);
        }
        entry.1 += 1;
        Ok(true)
    }

    async fn spend_distinct(
        &self,
        client: &ClientId,
        budget: &str,
        item: &str,
        limit: Limit,
        now: i64,
    ) -> Result<bool, StoreError> {
        let end = window_end(limit, now);
        let mut sets = self.limits.lock_sets();
        if sets.len() > MAX_ENTRIES {
            sets.retain(|_, (ends, _)| *ends > now);
        }
        let (ends, seen) = sets
            .entry((client.clone(), budget.to_string()))
            .or_insert_with(|| (end, HashSet::new()));
        if *ends != end {
            *ends = end;
            seen.clear();
        }
        if seen.contains(item) {
            return Ok(true);
        }
        if seen.len() >= limit.max as usize {
            return Ok(false);
        }
        seen.insert(item.to_string());
        Ok(true)
    }

    async fn refund(
        &self,
        client: &ClientId,
        budget: &str,
        limit: Limit,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut windows = self.limits.lock();
        if let Some((ends, n)) = windows.get_mut(&(client.clone(), budget.to_string()))
            && *ends == window_end(limit, now)
        {
            *n = n.saturating_sub(1);
        }
        Ok(())
    }
}
