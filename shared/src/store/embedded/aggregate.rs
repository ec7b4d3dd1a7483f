//! Votes, rankings and accumulated entries on the embedded store. A poll's
//! sums are one record, kept decoded by the writer's batch (see `writer`).

use redb::ReadableTable;

use super::EmbeddedStore;
use super::records::{
    Body, Record, get_json, get_record, internal, key, put_json, remove_partition, scan_partition,
};
use crate::aggregate::AggKey;
use crate::aggregate::accumulate::Entry;
use crate::aggregate::rank::Holder;
use crate::aggregate::vote::{Ballot, BucketedSums, Sums, replace_ballot};
use crate::clock::now_secs;
use crate::error::StoreError;
use crate::ids::ViewerId;
use crate::store::AggregateStore;
use crate::store::layout::{
    SINGLE, agg_kinds, aggregate_partition, entry_sk, parse_rank_count_sk, rank_count_sk,
};

pub(super) fn get_sums(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    k: &str,
    now: i64,
) -> Result<Option<BucketedSums>, StoreError> {
    match get_record(table, k, now)? {
        Some(Record {
            body: Body::Bytes(b),
            ..
        }) => BucketedSums::from_bytes(&b)
            .map(Some)
            .ok_or_else(|| internal("malformed vote sums")),
        Some(_) => Err(internal("unexpected record kind")),
        None => Ok(None),
    }
}

/// Adds `delta` to the rank count of (`bucket`, `key`); a count of 0 is removed.
fn bump_rank_count(
    table: &mut redb::Table<&str, &[u8]>,
    pk: &str,
    bucket: i64,
    rank_key: &str,
    delta: i64,
) -> Result<(), StoreError> {
    let k = key(pk, &rank_count_sk(bucket, rank_key));
    let n = get_json::<i64>(table, &k, i64::MIN)?.unwrap_or(0) + delta;
    if n == 0 {
        table.remove(k.as_str()).map_err(internal)?;
        Ok(())
    } else {
        put_json(table, &k, &n, bucket)
    }
}

/// The extension-wide copy of an entry's partition (admin reads every channel).
fn all_channels(acc: &AggKey) -> AggKey {
    AggKey {
        scope: None,
        ..acc.clone()
    }
}

impl AggregateStore for EmbeddedStore {
    async fn cast_vote(&self, poll: &AggKey, ballot: Ballot) -> Result<Sums, StoreError> {
        let sums_k = key(&aggregate_partition(poll, agg_kinds::VOTE_SUMS), SINGLE);
        let ballot_k = key(
            &aggregate_partition(poll, agg_kinds::BALLOTS),
            &ballot.voter,
        );
        self.write_batch(move |b| {
            let now = now_secs();
            let old: Option<Ballot> = get_json(&b.table, &ballot_k, now)?;
            b.load_sums(&sums_k)?;
            put_json(&mut b.table, &ballot_k, &ballot, ballot.bucket)?;
            // Nothing below can fail: the ballot and its sums change together.
            let sums = b.sums.get_mut(&sums_k).expect("loaded above");
            replace_ballot(sums, old.as_ref(), &ballot);
            sums.prune(now);
            Ok(sums.live(now))
        })
        .await
    }

    async fn vote_totals(
        &self,
        poll: &AggKey,
        voter: Option<&ViewerId>,
    ) -> Result<(Sums, Option<Ballot>), StoreError> {
        let sums_k = key(&aggregate_partition(poll, agg_kinds::VOTE_SUMS), SINGLE);
        let ballot_k =
            voter.map(|v| key(&aggregate_partition(poll, agg_kinds::BALLOTS), v.as_str()));
        self.read(move |t| {
            let now = now_secs();
            let sums = get_sums(t, &sums_k, now)?;
            let ballot = match ballot_k {
                Some(k) => get_json(t, &k, now)?,
                None => None,
            };
            Ok((sums.map(|s| s.live(now)).unwrap_or_default(), ballot))
        })
        .await
    }

    async fn ballots(&self, poll: &AggKey) -> Result<Vec<Ballot>, StoreError> {
        let pk = aggregate_partition(poll, agg_kinds::BALLOTS);
        self.read(move |t| {
            scan_partition(t, &pk, None, usize::MAX, now_secs())?
                .into_iter()
                .map(|(_, rec)| match rec.body {
                    Body::Text(text) => serde_json::from_str(&text).map_err(internal),
                    _ => Err(internal("unexpected record kind")),
                })
                .collect()
        })
        .await
    }

    async fn delete_poll(&self, poll: &AggKey) -> Result<(), StoreError> {
        let ballots = aggregate_partition(poll, agg_kinds::BALLOTS);
        let sums = aggregate_partition(poll, agg_kinds::VOTE_SUMS);
        self.write_batch(move |b| {
            remove_partition(&mut b.table, &ballots)?;
            remove_partition(&mut b.table, &sums)?;
            // Votes earlier in this batch must not write the sums back.
            b.sums.remove(&key(&sums, SINGLE));
            Ok(())
        })
        .await
    }

    async fn set_rank_key(
        &self,
        rank: &AggKey,
        voter: &ViewerId,
        rank_key: &str,
        bucket: i64,
    ) -> Result<Option<String>, StoreError> {
        let holder_k = key(
            &aggregate_partition(rank, agg_kinds::RANK_HOLDERS),
            voter.as_str(),
        );
        let counts = aggregate_partition(rank, agg_kinds::RANK_COUNTS);
        let new = Holder {
            key: rank_key.to_string(),
            bucket,
        };
        self.write(move |t| {
            let old: Option<Holder> = get_json(t, &holder_k, now_secs())?;
            if old.as_ref() == Some(&new) {
                return Ok(old.map(|h| h.key));
            }
            if let Some(o) = &old {
                bump_rank_count(t, &counts, o.bucket, &o.key, -1)?;
            }
            bump_rank_count(t, &counts, new.bucket, &new.key, 1)?;
            put_json(t, &holder_k, &new, new.bucket)?;
            Ok(old.map(|h| h.key))
        })
        .await
    }

    async fn rank_key(
        &self,
        rank: &AggKey,
        voter: &ViewerId,
    ) -> Result<Option<String>, StoreError> {
        let holder_k = key(
            &aggregate_partition(rank, agg_kinds::RANK_HOLDERS),
            voter.as_str(),
        );
        self.read(move |t| Ok(get_json::<Holder>(t, &holder_k, now_secs())?.map(|h| h.key)))
            .await
    }

    async fn rank_counts(&self, rank: &AggKey) -> Result<Vec<(String, i64)>, StoreError> {
        let pk = aggregate_partition(rank, agg_kinds::RANK_COUNTS);
        self.read(move |t| {
            let mut out = Vec::new();
            for (sk, rec) in scan_partition(t, &pk, None, usize::MAX, now_secs())? {
                let (Some((_, rank_key)), Body::Text(n)) = (parse_rank_count_sk(&sk), rec.body)
                else {
                    return Err(internal("malformed rank count"));
                };
                out.push((rank_key.to_string(), n.parse().map_err(internal)?));
            }
            Ok(out)
        })
        .await
    }

    async fn delete_rank(&self, rank: &AggKey) -> Result<(), StoreError> {
        let holders = aggregate_partition(rank, agg_kinds::RANK_HOLDERS);
        let counts = aggregate_partition(rank, agg_kinds::RANK_COUNTS);
        self.write(move |t| {
            remove_partition(t, &holders)?;
            remove_partition(t, &counts)
        })
        .await
    }

    async fn add_entry(
        &self,
        acc: &AggKey,
        entry: &Entry,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let sk = entry_sk(entry.observed);
        let own = key(&aggregate_partition(acc, agg_kinds::ENTRIES), &sk);
        let all = key(
            &aggregate_partition(&all_channels(acc), agg_kinds::ENTRIES),
            &sk,
        );
        let entry = entry.clone();
        self.write(move |t| {
            put_json(t, &own, &entry, expires_at)?;
            if all != own {
                put_json(t, &all, &entry, expires_at)?;
            }
            Ok(())
        })
        .await
    }

    async fn entries(
        &self,
        acc: &AggKey,
        start: i64,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let pk = aggregate_partition(acc, agg_kinds::ENTRIES);
        self.read(move |t| {
            let now = now_secs();
            let from = key(&pk, &format!("{:013}", start.saturating_add(1)));
            let end = match before {
                Some(b) => key(&pk, &format!("{b:013}")),
                None => format!("{pk}\u{1}"),
            };
            let mut out = Vec::new();
            for row in t
                .range(from.as_str()..end.as_str())
                .map_err(internal)?
                .rev()
            {
                let (_, v) = row.map_err(internal)?;
                if let Some(Record {
                    body: Body::Text(text),
                    ..
                }) = Record::from_bytes(v.value())?.live(now)
                {
                    out.push(serde_json::from_str(&text).map_err(internal)?);
                    if out.len() == limit {
                        break;
                    }
                }
            }
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ChannelId, ClientId};

    /// Votes and a delete landing in the same group commit: the sums cache
    /// must not write a deleted poll's sums back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn deletes_and_votes_in_one_batch_stay_consistent() {
        let store = EmbeddedStore::in_memory();
        let poll = AggKey::for_caller(
            &ClientId::parse("c").unwrap(),
            Some(&ChannelId::parse("1").unwrap()),
            &crate::ids::AggregateId::parse("p").unwrap(),
        )
        .unwrap();
        let now = now_secs();
        for round in 0..5 {
            let mut tasks = tokio::task::JoinSet::new();
            for v in 0..40 {
                let (s, p) = (store.clone(), poll.clone());
                tasks.spawn(async move {
                    if v == 20 {
                        s.delete_poll(&p).await.unwrap();
                        return;
                    }
                    let b = Ballot {
                        voter: format!("V{v}"),
                        user_id: String::new(),
                        value: v + round,
                        weight: 1,
                        cast_at: now,
                        bucket: now + 3600,
                    };
                    s.cast_vote(&p, b).await.unwrap();
                });
            }
            while tasks.join_next().await.is_some() {}
            let ballots = store.ballots(&poll).await.unwrap();
            let mut expected = Sums::default();
            for b in &ballots {
                expected.add(b.value, b.weight);
            }
            assert_eq!(store.vote_totals(&poll, None).await.unwrap().0, expected);
        }
    }
}
