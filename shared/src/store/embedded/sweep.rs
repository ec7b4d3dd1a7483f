//! Expired records leave the file. DynamoDB's TTL deletes expired items;
//! readers here skip them, and without this nothing ever removed them, so a
//! server running for weeks grew without bound (an accumulate load left
//! 1.3 GB in five minutes). A background task sweeps the key space in
//! slices of [`KEYS_PER_PASS`], one short write job each, going round from
//! where the last pass stopped: a request waits at most for one slice.

use std::ops::Bound;
use std::time::Duration;

use redb::ReadableTable;

use super::EmbeddedStore;
use super::records::internal;
use crate::clock::now_secs;
use crate::error::StoreError;

/// Keys one pass reads (a few milliseconds of the writer's time).
pub const KEYS_PER_PASS: usize = 5_000;
/// Pause between passes: 5,000 keys a second, a million-key file swept
/// every few minutes.
pub const PASS_INTERVAL: Duration = Duration::from_secs(1);

/// Where the next pass starts (None: at the first key) and what one removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    pub next: Option<String>,
    pub removed: usize,
}

impl EmbeddedStore {
    /// One pass: reads up to `limit` keys after `after`, removes the
    /// records expired at `now`. `next` is None when the pass reached the end.
    pub async fn sweep_expired(
        &self,
        after: Option<String>,
        limit: usize,
        now: i64,
    ) -> Result<Pass, StoreError> {
        self.write(move |t| {
            let start = match &after {
                Some(k) => Bound::Excluded(k.as_str()),
                None => Bound::Unbounded,
            };
            let (mut expired, mut last, mut seen) = (Vec::new(), None, 0);
            for entry in t
                .range::<&str>((start, Bound::Unbounded))
                .map_err(internal)?
                .take(limit)
            {
                let (k, v) = entry.map_err(internal)?;
                seen += 1;
                let key = k.value().to_string();
                // A record starts with its expiry (`records::Record`).
                let expires_at = v
                    .value()
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map(i64::from_be_bytes);
                if expires_at.is_some_and(|e| e <= now) {
                    expired.push(key.clone());
                }
                last = Some(key);
            }
            for k in &expired {
                t.remove(k.as_str()).map_err(internal)?;
            }
            Ok::<_, StoreError>(Pass {
                next: last.filter(|_| seen == limit),
                removed: expired.len(),
            })
        })
        .await
    }

    /// Sweeps in the background for as long as the runtime runs: one pass
    /// every `every`, going round the key space.
    pub fn start_sweeper(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut after = None;
            let mut removed_this_round = 0;
            loop {
                tokio::time::sleep(every).await;
                match store
                    .sweep_expired(after.take(), KEYS_PER_PASS, now_secs())
                    .await
                {
                    Ok(pass) => {
                        removed_this_round += pass.removed;
                        after = pass.next;
                        if after.is_none() && removed_this_round > 0 {
                            tracing::info!(removed = removed_this_round, "expired records swept");
                            removed_this_round = 0;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "sweeping expired records failed"),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::records::{Body, Record, put_record};

    async fn put_raw(s: &EmbeddedStore, k: &str, expires_at: i64) {
        let (k, rec) = (
            k.to_string(),
            Record {
                expires_at,
                body: Body::Empty,
            },
        );
        s.write(move |t| put_record(t, &k, &rec)).await.unwrap();
    }

    /// Every key in the file, expired or not.
    async fn raw_keys(s: &EmbeddedStore) -> Vec<String> {
        s.read(|t| {
            t.iter()
                .map_err(internal)?
                .map(|e| e.map(|(k, _)| k.value().to_string()).map_err(internal))
                .collect()
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn passes_remove_expired_records_and_go_round() {
        let s = EmbeddedStore::in_memory();
        // 25 records, every third expired.
        for i in 0..25 {
            let expires_at = if i % 3 == 0 { 100 } else { 10_000 };
            put_raw(&s, &format!("k{i:02}"), expires_at).await;
        }
        let first = s.sweep_expired(None, 10, 1_000).await.unwrap();
        assert_eq!(first.next.as_deref(), Some("k09"));
        assert_eq!(first.removed, 4, "k00 k03 k06 k09");
        let second = s.sweep_expired(first.next, 10, 1_000).await.unwrap();
        let third = s
            .sweep_expired(second.next.clone(), 10, 1_000)
            .await
            .unwrap();
        assert_eq!(second.removed + third.removed, 5);
        assert_eq!(third.next, None, "the end: the next pass starts over");
        let keys = raw_keys(&s).await;
        assert_eq!(keys.len(), 16);
        assert!(keys.iter().all(|k| k[1..].parse::<u32>().unwrap() % 3 != 0));
        // Nothing left to remove; live records stay.
        assert_eq!(s.sweep_expired(None, 100, 1_000).await.unwrap().removed, 0);
        assert_eq!(
            s.sweep_expired(None, 100, 20_000).await.unwrap().removed,
            16
        );
    }

    /// On a file: swept records are gone when the file is opened again, and
    /// a second load of the same size reuses the freed pages instead of
    /// growing the file.
    #[tokio::test]
    async fn a_swept_file_stays_bounded() {
        let dir = std::env::temp_dir().join(format!("medkit-sweep-{}", crate::random::token_id(8)));
        let path = dir.join("medkit.redb");
        // One write job per load: 2,000 records, all expired by `now` 1,000.
        let load = |s: EmbeddedStore, round: usize| async move {
            s.write(move |t| {
                for i in 0..2_000 {
                    let rec = Record {
                        expires_at: 100,
                        body: Body::Text("x".repeat(200)),
                    };
                    put_record(t, &format!("r{round}-{i:05}"), &rec)?;
                }
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap()
        };
        let s = EmbeddedStore::open(&path).unwrap();
        load(s.clone(), 0).await;
        assert_eq!(
            s.sweep_expired(None, 10_000, 1_000).await.unwrap().removed,
            2_000
        );
        let after_one = std::fs::metadata(&path).unwrap().len();
        drop(s);
        let s = EmbeddedStore::open(&path).unwrap();
        assert!(
            raw_keys(&s).await.is_empty(),
            "nothing expired is left in the file"
        );
        for round in 1..4 {
            load(s.clone(), round).await;
            s.sweep_expired(None, 10_000, 1_000).await.unwrap();
        }
        let after_four = std::fs::metadata(&path).unwrap().len();
        println!("file after one load: {after_one} B, after four: {after_four} B");
        assert!(
            after_four <= after_one * 2,
            "the file grew from {after_one} to {after_four} bytes"
        );
        drop(s);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
