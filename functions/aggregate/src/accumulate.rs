//! `accumulate`: viewers post small entries; the broadcaster reads their
//! channel's, the extension reads every channel's. Every entry is filed
//! under its sender's channel (and the extension-wide copy), `global…` ids
//! too, so a broadcaster never reads another channel's entries.

use axum::extract::State;
use axum::response::Response;
use medkit::aggregate::accumulate::{self, Entry, MAX_ENTRIES};
use medkit::app::SharedApp;
use medkit::auth::{Caller, Role};
use medkit::clock::{now_ms, now_secs};
use medkit::error::ApiError;
use medkit::http::{JsonBody, QueryMap, ok};
use medkit::limits::ENTRIES_PER_VIEWER;
use medkit::store::{AggregateStore, AuthStore, LimitStore};
use serde_json::json;

use crate::{PRIVILEGED, agg_key};

pub async fn add<S: AggregateStore + AuthStore + LimitStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    query: QueryMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let (id, mut key) = agg_key(&caller, &query)?;
    key.scope = Some(caller.channel()?.clone());
    let data = accumulate::entry_data(&body)?;
    if !caller.role.is_privileged() {
        // One viewer cannot push everyone else's entries out of reach.
        let (limit, now) = (ENTRIES_PER_VIEWER, now_secs());
        let budget = format!("acc|{}|{}", key.fingerprint("a"), caller.voter_id()?);
        if !app
            .store
            .spend(&caller.client_id, &budget, limit, now)
            .await?
        {
            return Err(limit.refusal(&format!("entries of your own to {id}"), now));
        }
    }
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
    key.scope = if PRIVILEGED.contains(&caller.role) {
        // The extension reads what every channel accumulated.
        None
    } else {
        // A broadcaster reads its own channel's, `global…` ids included.
        caller.require(&[Role::Broadcaster])?;
        Some(caller.channel()?.clone())
    };
    let start = accumulate::parse_start(query.get("start"))?;
    let before = accumulate::parse_before(query.get("before"))?;
    let entries = app.store.entries(&key, start, before, MAX_ENTRIES).await?;
    Ok(ok(accumulate::accumulate_data(&entries, start)))
}
