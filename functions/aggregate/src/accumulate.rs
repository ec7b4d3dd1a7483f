//! `accumulate`: viewers post small entries; the broadcaster reads their
//! channel's, the extension reads every channel's.

use axum::extract::State;
use axum::response::Response;
use medkit::aggregate::accumulate::{self, Entry, MAX_ENTRIES};
use medkit::app::SharedApp;
use medkit::auth::{Caller, Role};
use medkit::clock::{now_ms, now_secs};
use medkit::error::ApiError;
use medkit::http::{JsonBody, QueryMap, ok};
use medkit::store::{AggregateStore, AuthStore};
use serde_json::json;

use crate::{PRIVILEGED, agg_key};

pub async fn add<S: AggregateStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    query: QueryMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let (_, key) = agg_key(&caller, &query)?;
    let data = accumulate::entry_data(&body)?;
    let entry = Entry {
        observed: now_ms(),
        channel_id: caller.channel()?.to_string(),
        opaque_user_id: caller.opaque_user_id.clone().unwrap_or_default(),
        user_id: caller
            .user_id
            .as_ref()
            .map(|u| u.to_string())
            .unwrap_or_default(),
        data,
    };
    let expires_at = now_secs() + app.expiry.accumulate_secs;
    app.store.add_entry(&key, &entry, expires_at).await?;
    Ok(ok(json!({})))
}

pub async fn read<S: AggregateStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    query: QueryMap,
) -> Result<Response, ApiError> {
    let (_, mut key) = agg_key(&caller, &query)?;
    if PRIVILEGED.contains(&caller.role) {
        // The extension reads what every channel accumulated.
        key.scope = None;
    } else {
        caller.require(&[Role::Broadcaster])?;
    }
    let start = accumulate::parse_start(query.get("start"))?;
    let entries = app.store.entries(&key, start, MAX_ENTRIES).await?;
    Ok(ok(accumulate::accumulate_data(&entries, start)))
}
