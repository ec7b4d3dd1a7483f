//! The `codes` function: game-code sets, eligibility and redemption
//! (CONTRACT §5). Handlers validate with `medkit::codes` and call the
//! `CodeStore` port, whose adapters make redemption race-free.

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::Response;
use axum::routing::{get, post, put};
use medkit::aggregate::AggKey;
use medkit::app::SharedApp;
use medkit::auth::{Caller, Role};
use medkit::clock::now_secs;
use medkit::codes::{
    self, MAX_SLOTS, MarkFromList, MarkFromPoll, Prizes, SET_TTL_SECS, SetInfo, Standing, Upload,
    redeem_slot,
};
use medkit::error::ApiError;
use medkit::http::{JsonBody, QueryMap, finish, ok};
use medkit::ids::{AggregateId, UserId};
use medkit::store::{AggregateStore, AuthStore, CodeStore};
use serde_json::{Value, json};

/// `PUT codes` bodies may be as large as a Lambda request (~6 MB); bigger
/// sets are uploaded in parts with `?append=true`.
pub const MAX_UPLOAD_BYTES: usize = 6 * 1024 * 1024;

const PRIVILEGED: &[Role] = &[Role::Admin, Role::Backend];

/// `GET codes` body: the live sets in slot order.
fn sets_view(sets: &[SetInfo]) -> Value {
    json!({
        "slots": sets.iter().map(|s| s.slot).collect::<Vec<_>>(),
        "names": sets.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        "remaining": sets.iter().map(SetInfo::remaining).collect::<Vec<_>>(),
        "distributed": sets.iter().map(|s| s.distributed).collect::<Vec<_>>(),
    })
}

async fn upload<S: CodeStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    query: QueryMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(PRIVILEGED)?;
    let append = matches!(query.get("append"), Some("true") | Some("1"));
    let part = query.get("part").map(codes::part_id).transpose()?;
    let upload = Upload::parse(&body, append)?;
    let client = &caller.client_id;
    let existing = app.store.sets(client).await?;
    if append {
        // Check every part before writing any.
        for set in &upload.sets {
            let Some(current) = existing.iter().find(|s| s.slot == set.slot) else {
                return Err(ApiError::not_found(format!(
                    "no code set in slot {} to append to; PUT it without append first",
                    set.slot
                )));
            };
            if current.name != set.name {
                return Err(ApiError::bad_request(format!(
                    "slot {} holds the set {:?}, not {:?}",
                    set.slot, current.name, set.name
                )));
            }
        }
        for set in &upload.sets {
            app.store
                .append_codes(client, set.slot, &set.codes, part)
                .await?
                .ok_or_else(|| ApiError::conflict("the set was removed meanwhile"))?;
        }
    } else {
        // Names stay unique across the slots this upload does not replace.
        for set in &upload.sets {
            if existing
                .iter()
                .any(|s| s.name == set.name && !upload.sets.iter().any(|u| u.slot == s.slot))
            {
                return Err(ApiError::bad_request(format!(
                    "another slot already holds a set named {:?}",
                    set.name
                )));
            }
        }
        let expires_at = now_secs() + SET_TTL_SECS;
        for set in &upload.sets {
            app.store.put_set(client, set, expires_at).await?;
        }
    }
    tracing::info!(
        sets = upload.sets.len(),
        codes = upload.sets.iter().map(|s| s.codes.len()).sum::<usize>(),
        append,
        "codes uploaded"
    );
    Ok(ok(sets_view(&app.store.sets(client).await?)))
}

async fn status<S: CodeStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    caller.require(PRIVILEGED)?;
    Ok(ok(sets_view(&app.store.sets(&caller.client_id).await?)))
}

async fn delete_all<S: CodeStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    caller.require(PRIVILEGED)?;
    let gone = app.store.delete_sets(&caller.client_id).await?;
    let distributed: Vec<usize> = gone.iter().map(|s| s.distributed).collect();
    Ok(ok(json!({ "distributed": distributed })))
}

/// The current set of every slot a mark names (404 for an empty slot).
async fn prize_sets<S: CodeStore>(
    app: &SharedApp<S>,
    caller: &Caller,
    prizes: &Prizes,
) -> Result<Vec<(SetInfo, u32)>, ApiError> {
    let sets = app.store.sets(&caller.client_id).await?;
    prizes
        .0
        .iter()
        .map(|(slot, cap)| {
            sets.iter()
                .find(|s| s.slot == *slot)
                .map(|s| (s.clone(), *cap))
                .ok_or_else(|| ApiError::not_found(format!("no code set in slot {slot}")))
        })
        .collect()
}

async fn mark<S: CodeStore>(
    app: &SharedApp<S>,
    caller: &Caller,
    users: &[UserId],
    prizes: &Prizes,
) -> Result<Response, ApiError> {
    let marks = users.len() * prizes.0.len();
    if marks > codes::MAX_MARKS_PER_REQUEST {
        return Err(ApiError::too_large(format!(
            "{} users x {} prizes is {marks} marks; one request makes at most {}: \
             mark them in pages with mark_from_list",
            users.len(),
            prizes.0.len(),
            codes::MAX_MARKS_PER_REQUEST
        )));
    }
    let caps = prize_sets(app, caller, prizes).await?;
    app.store
        .raise_caps(&caller.client_id, users, &caps, now_secs() + SET_TTL_SECS)
        .await?;
    Ok(ok(json!({ "marked": users.len() })))
}

async fn mark_from_poll<S: CodeStore + AggregateStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(PRIVILEGED)?;
    let m = MarkFromPoll::parse(&body)?;
    let id = AggregateId::parse(m.poll_id.as_str())?;
    let poll = AggKey::for_caller(&caller.client_id, caller.channel_id.as_ref(), &id)?;
    let mut users: Vec<UserId> = app
        .store
        .ballots(&poll)
        .await?
        .into_iter()
        // Codes go to Twitch users: anonymous ballots cannot win.
        .filter(|b| b.value == m.correct && b.cast_at <= m.cutoff && !b.user_id.is_empty())
        .filter_map(|b| UserId::parse(b.user_id).ok())
        .collect();
    users.sort();
    users.dedup();
    mark(&app, &caller, &users, &m.prizes).await
}

async fn mark_from_list<S: CodeStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(PRIVILEGED)?;
    let m = MarkFromList::parse(&body)?;
    mark(&app, &caller, &m.users, &m.prizes).await
}

/// The viewer's Twitch id: codes are only for viewers who shared identity.
fn identity(caller: &Caller) -> Result<&UserId, ApiError> {
    caller.user_id.as_ref().ok_or_else(|| {
        ApiError::forbidden("share your Twitch identity with the extension to receive codes")
    })
}

/// The caller's standing in every slot 0..9 (default where no set is).
async fn standings_by_slot<S: CodeStore>(
    app: &SharedApp<S>,
    caller: &Caller,
) -> Result<Vec<(Option<SetInfo>, Standing)>, ApiError> {
    let user = identity(caller)?;
    let sets = app.store.sets(&caller.client_id).await?;
    let standings = app.store.standings(&caller.client_id, user, &sets).await?;
    Ok((0..MAX_SLOTS)
        .map(|slot| match sets.iter().position(|s| s.slot == slot) {
            Some(i) => (Some(sets[i].clone()), standings[i].clone()),
            None => (None, Standing::default()),
        })
        .collect())
}

async fn eligible<S: CodeStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let eligible: Vec<usize> = standings_by_slot(&app, &caller)
        .await?
        .iter()
        .map(|(set, st)| match set {
            Some(set) => st.claimable().min(set.remaining()),
            None => 0,
        })
        .collect();
    Ok(ok(json!({ "eligible": eligible })))
}

async fn redeemed<S: CodeStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let redeemed: Vec<Vec<String>> = standings_by_slot(&app, &caller)
        .await?
        .into_iter()
        .map(|(_, st)| st.held)
        .collect();
    Ok(ok(json!({ "redeemed": redeemed })))
}

async fn redeem<S: CodeStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let user = identity(&caller)?;
    let slot = redeem_slot(&body)?;
    let (code, held) = app.store.redeem(&caller.client_id, user, slot).await?;
    Ok(ok(json!({ "code": code, "all_prizes": held })))
}

/// The routes, without the common layers (the dev server merges several functions).
pub fn routes<S: CodeStore + AggregateStore + AuthStore>() -> Router<SharedApp<S>> {
    Router::new()
        .route(
            "/v1/e/codes",
            put(upload::<S>)
                .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
                .get(status::<S>)
                .delete(delete_all::<S>),
        )
        .route("/v1/e/codes/mark_from_poll", post(mark_from_poll::<S>))
        .route("/v1/e/codes/mark_from_list", post(mark_from_list::<S>))
        .route("/v1/e/codes/eligible", get(eligible::<S>))
        .route("/v1/e/codes/eligibility", get(eligible::<S>))
        .route("/v1/e/codes/redeem", post(redeem::<S>))
        .route("/v1/e/codes/redeemed", get(redeemed::<S>))
}

/// The complete router this function serves.
pub fn router<S: CodeStore + AggregateStore + AuthStore>(app: SharedApp<S>) -> Router {
    finish(routes::<S>().with_state(app))
}
