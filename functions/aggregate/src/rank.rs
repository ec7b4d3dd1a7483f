//! `rank`: each viewer holds one key; `GET` returns the keys most held.

use axum::extract::State;
use axum::response::Response;
use medkit::aggregate::rank::{self, TOP};
use medkit::aggregate::window::expiry_bucket;
use medkit::app::SharedApp;
use medkit::auth::Caller;
use medkit::clock::now_secs;
use medkit::error::ApiError;
use medkit::http::{JsonBody, QueryMap, ok};
use medkit::store::{AggregateStore, AuthStore, LimitStore};
use serde_json::json;

use crate::{CHANNEL_OWNERS, PRIVILEGED, agg_key, spend_new_aggregate};

pub async fn set<S: AggregateStore + AuthStore + LimitStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    query: QueryMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let (_, key) = agg_key(&caller, &query)?;
    let new_key = rank::parse_key(&body)?;
    let voter = caller.voter_id()?;
    spend_new_aggregate(&app, &caller, &voter, &key, "r").await?;
    let bucket = expiry_bucket(now_secs(), app.expiry.rank_secs);
    let original = app
        .store
        .set_rank_key(&key, &voter, &new_key, bucket)
        .await?;
    let mut out = json!({"accepted": true});
    if let Some(o) = original {
        out["original"] = json!(o);
    }
    Ok(ok(out))
}

pub async fn read<S: AggregateStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    query: QueryMap,
) -> Result<Response, ApiError> {
    let (_, key) = agg_key(&caller, &query)?;
    let counts = app.store.rank_counts(&key).await?;
    Ok(ok(rank::rank_data(&rank::top_scores(counts, TOP))))
}

pub async fn clear<S: AggregateStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    query: QueryMap,
) -> Result<Response, ApiError> {
    let (id, key) = agg_key(&caller, &query)?;
    // An extension-wide ranking belongs to every channel: only the extension clears it.
    caller.require(if id.is_global() {
        PRIVILEGED
    } else {
        CHANNEL_OWNERS
    })?;
    app.store.delete_rank(&key).await?;
    Ok(ok(json!({})))
}
