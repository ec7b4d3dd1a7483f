//! The `aggregate` function: votes, rankings, accumulated entries and trivia
//! (CONTRACT §4). Handlers validate, call the `AggregateStore` port and shape
//! the response; the maths lives in `medkit::aggregate`.

mod accumulate;
mod rank;
pub mod timers;
mod trivia;
mod vote;

use axum::Router;
use axum::routing::{get, post};
use medkit::aggregate::AggKey;
use medkit::app::SharedApp;
use medkit::auth::{Caller, Role};
use medkit::clock::now_secs;
use medkit::error::ApiError;
use medkit::http::{QueryMap, finish};
use medkit::ids::AggregateId;
use medkit::ids::ViewerId;
use medkit::limits::NEW_AGGREGATES_PER_VIEWER;
use medkit::store::{AggregateStore, AuthStore, DocumentStore, LimitStore};

pub use vote::{GameNotices, MAX_LOG_ENTRIES, VoteNotices};

const PRIVILEGED: &[Role] = &[Role::Admin, Role::Backend];
const CHANNEL_OWNERS: &[Role] = &[Role::Broadcaster, Role::Admin, Role::Backend];

/// A first vote in a poll or key in a ranking spends from the caller's budget
/// of distinct polls and rankings per hour (the extension's own roles are
/// not limited); 429 when it is spent.
async fn spend_new_aggregate<S: LimitStore>(
    app: &SharedApp<S>,
    caller: &Caller,
    voter: &ViewerId,
    agg: &AggKey,
    kind: &str,
) -> Result<(), ApiError> {
    if caller.role.is_privileged() {
        return Ok(());
    }
    let limit = NEW_AGGREGATES_PER_VIEWER;
    let now = now_secs();
    let budget = format!("new|{voter}");
    let item = agg.fingerprint(kind);
    if app
        .store
        .spend_distinct(&caller.client_id, &budget, &item, limit, now)
        .await?
    {
        Ok(())
    } else {
        Err(limit.refusal("polls and rankings of your own", now))
    }
}

/// The aggregate named by `?id=` (default `default`) as the caller sees it.
fn agg_key(caller: &Caller, query: &QueryMap) -> Result<(AggregateId, AggKey), ApiError> {
    let id = AggregateId::from_query(query.get("id"))?;
    let key = AggKey::for_caller(&caller.client_id, caller.channel_id.as_ref(), &id)?;
    Ok((id, key))
}

/// The routes, without the common layers (the dev server merges several functions).
pub fn routes<S: DocumentStore + AggregateStore + AuthStore + LimitStore>() -> Router<SharedApp<S>>
{
    let notices = std::sync::Arc::new(VoteNotices::default());
    let game_notices = std::sync::Arc::new(GameNotices::default());
    Router::new()
        .route(
            "/v1/e/accumulate",
            get(accumulate::read::<S>).post(accumulate::add::<S>),
        )
        .route(
            "/v1/e/rank",
            get(rank::read::<S>)
                .post(rank::set::<S>)
                .delete(rank::clear::<S>),
        )
        .route(
            "/v1/e/vote",
            get(vote::read::<S>)
                .post(vote::cast::<S>)
                .delete(vote::clear::<S>),
        )
        .route("/v1/e/vote_logs", get(vote::logs::<S>))
        .route(
            "/v1/e/curated_poll_edit",
            post(trivia::upsert_question::<S>).delete(trivia::delete_question::<S>),
        )
        .route(
            "/v1/e/curated_poll_edit_option",
            post(trivia::upsert_option::<S>).delete(trivia::delete_option::<S>),
        )
        .route("/v1/e/curated_poll_state", post(trivia::transition::<S>))
        .route(
            "/v1/e/curated_poll",
            get(trivia::read::<S>).post(trivia::vote::<S>),
        )
        .route(
            "/v1/e/team_membership",
            get(trivia::team::<S>).post(trivia::team::<S>),
        )
        .route(
            "/v1/e/curated_poll_leaderboard",
            get(trivia::leaderboard::<S>),
        )
        .layer(axum::Extension(notices))
        .layer(axum::Extension(game_notices))
}

/// The complete router this function serves.
pub fn router<S: DocumentStore + AggregateStore + AuthStore + LimitStore>(
    app: SharedApp<S>,
) -> Router {
    finish(routes::<S>().with_state(app))
}
