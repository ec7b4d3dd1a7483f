//! Votes/s on ONE poll against DynamoDB: the sharded design (8 shard items)
//! beside a single-counter variant (1 item), same run, same load.
//!
//! Needs a DynamoDB endpoint: `infra/scripts/bench-votes-dynamodb.sh` starts
//! DynamoDB Local and runs this. Settings: BENCH_SECS (default 10) per
//! variant, BENCH_CLIENTS (default 64) concurrent voters in flight.
//!
//! After each variant, the poll it filled is deleted (time, round trips).
//!
//! DynamoDB Local does not model a partition's ~1000 writes/s limit, so what
//! this shows locally is the cost of contention (transaction conflicts and
//! retries on a hot item) and of reading more shards, not AWS throttling.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use medkit::aggregate::AggKey;
use medkit::aggregate::vote::Ballot;
use medkit::aggregate::window::expiry_bucket;
use medkit::clock::now_secs;
use medkit::ids::{AggregateId, ChannelId, ClientId};
use medkit::store::AggregateStore;
use medkit::store::dynamo::{DynamoStore, Tables};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Figures {
    votes: usize,
    conflicts: usize,
    round_trips: usize,
    secs: f64,
    deleted: Deleted,
}

/// Deleting the poll the run filled: its ballots, the delete's time and
/// round trips (one UpdateItem, then the sweep of the old generation).
struct Deleted {
    ballots: usize,
    ms: f64,
    round_trips: usize,
}

async fn run(
    store: DynamoStore,
    rt: medkit::testing::RoundTripCounter,
    clients: usize,
    secs: u64,
) -> Figures {
    let poll = AggKey::for_caller(
        &ClientId::parse("bench").unwrap(),
        Some(&ChannelId::parse("1").unwrap()),
        &AggregateId::parse("hot").unwrap(),
    )
    .unwrap();
    let votes = Arc::new(AtomicUsize::new(0));
    let conflicts = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    rt.reset();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let (store, poll, votes, conflicts, stop) = (
            store.clone(),
            poll.clone(),
            votes.clone(),
            conflicts.clone(),
            stop.clone(),
        );
        tasks.spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                // 10,000 different voters, each client cycling through its own.
                let voter = format!("V{}", (c as u64 * 7919 + i) % 10_000);
                let ballot = Ballot {
                    voter,
                    user_id: String::new(),
                    value: (i % 5) as i64,
                    weight: 1,
                    cast_at: now_secs(),
                    bucket: expiry_bucket(now_secs(), 7 * 86400),
                };
                match store.cast_vote(&poll, ballot).await {
                    Ok(_) => votes.fetch_add(1, Ordering::Relaxed),
                    Err(_) => conflicts.fetch_add(1, Ordering::Relaxed),
                };
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}
    let (round_trips, secs) = (rt.get(), started.elapsed().as_secs_f64());
    let ballots = store.ballots(&poll).await.expect("ballots").len();
    rt.reset();
    let t = Instant::now();
    store.delete_poll(&poll).await.expect("delete");
    let deleted = Deleted {
        ballots,
        ms: t.elapsed().as_secs_f64() * 1000.0,
        round_trips: rt.get(),
    };
    let (left, _) = store.vote_totals(&poll, None).await.expect("totals");
    assert_eq!(left.n, 0, "the deleted poll reads empty");
    Figures {
        votes: votes.load(Ordering::Relaxed),
        conflicts: conflicts.load(Ordering::Relaxed),
        round_trips,
        secs,
        deleted,
    }
}

#[tokio::main]
async fn main() {
    let Ok(endpoint) = std::env::var(medkit::testing::ENDPOINT_VAR) else {
        eprintln!(
            "set {} (infra/scripts/bench-votes-dynamodb.sh does it)",
            medkit::testing::ENDPOINT_VAR
        );
        return;
    };
    let secs = env_or("BENCH_SECS", 10);
    let clients = env_or("BENCH_CLIENTS", 64) as usize;
    println!("votes on one poll, {clients} concurrent clients, {secs} s per variant, {endpoint}");
    let mut results = Vec::new();
    for shards in [8u32, 1] {
        let prefix = format!("bench{}-", medkit::random::token_id(6));
        let (store, rt) =
            medkit::testing::counted_dynamo_store(&endpoint, Tables::with_prefix(&prefix));
        store.ensure_tables().await.expect("tables");
        let store = store.with_vote_shards(shards);
        let f = run(store, rt, clients, secs).await;
        let rate = f.votes as f64 / f.secs;
        println!(
            "{shards} shard item(s): {:>8.0} votes/s  ({} votes, {} failed after retries, {:.2} round trips/vote)",
            rate,
            f.votes,
            f.conflicts,
            f.round_trips as f64 / f.votes.max(1) as f64
        );
        println!(
            "  delete of that poll ({} ballots): {:.0} ms, {} round trips (1 UpdateItem, then the sweep)",
            f.deleted.ballots, f.deleted.ms, f.deleted.round_trips
        );
        results.push(rate);
    }
    println!("sharded / single-counter = {:.2}", results[0] / results[1]);
}
