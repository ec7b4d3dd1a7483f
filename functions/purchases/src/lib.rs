//! The `purchases` function: `POST bits/transactions` (the official client's
//! `sendTransactionToServer`) records a Bits purchase once, from its
//! verified receipt, and tells the channel's games; `GET bits/transactions`
//! lists a channel's purchases and their state for the extension's backend
//! and the broadcaster. See `medkit::purchases` for the rules.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use medkit::app::SharedApp;
use medkit::auth::{self, Caller, Role};
use medkit::clock::{now_ms, now_secs};
use medkit::env::Env;
use medkit::error::ApiError;
use medkit::gamelink;
use medkit::http::{JsonBody, QueryMap, finish, json_response, ok};
use medkit::ids::ChannelId;
use medkit::purchases::{Facts, Purchase, ReceiptClaims, State as PurchaseState, Submission};
use medkit::store::{AuthStore, PurchaseStore, Recorded};
use serde_json::json;

const LISTERS: &[Role] = &[Role::Broadcaster, Role::Admin, Role::Backend];

/// The facts of a submission: its receipt's, verified with the extension's
/// secrets; in the sandbox, a receipt that does not verify gives the body's
/// (and marks the purchase).
fn facts<S>(
    app: &SharedApp<S>,
    caller: &Caller,
    sub: &Submission,
) -> Result<(Facts, bool), ApiError> {
    let ext = app
        .registry
        .get(caller.client_id.as_str())
        .ok_or_else(|| ApiError::unauthorized("unknown extension"))?;
    match auth::verify_signed::<ReceiptClaims>(ext, &sub.receipt) {
        Ok(claims) => Ok((claims.facts()?, false)),
        Err(e) if app.env == Env::Sandbox => {
            tracing::info!(reason = %e, "sandbox: an unverified transaction receipt accepted");
            let user = caller.user_id.as_ref().map(|u| u.as_str());
            Ok((sub.unsigned_facts(user)?, true))
        }
        Err(e) => Err(ApiError::unauthorized(format!(
            "the transaction receipt does not verify: {e}"
        ))),
    }
}

async fn submit<S: PurchaseStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let sub = Submission::parse(&body)?;
    let channel = caller.channel()?.clone();
    let (facts, sandbox) = facts(&app, &caller, &sub)?;
    if sub
        .transaction_id
        .as_ref()
        .is_some_and(|id| *id != facts.transaction_id)
    {
        return Err(ApiError::bad_request(
            "transactionId is not the receipt's transaction",
        ));
    }
    if let Some(user) = &caller.user_id
        && user.as_str() != facts.user_id
    {
        return Err(ApiError::forbidden(
            "the receipt is another user's purchase",
        ));
    }
    let purchase = Purchase {
        id: facts.transaction_id,
        muxy_id: medkit::random::token_id(16),
        channel: channel.to_string(),
        sku: facts.sku,
        display_name: facts.display_name,
        user_id: facts.user_id,
        username: sub.username,
        cost: facts.cost,
        currency: facts.currency,
        timestamp: facts.at_ms.unwrap_or_else(now_ms),
        state: PurchaseState::Received,
        sandbox,
        details: None,
        recorded_at: now_secs(),
    };
    match app
        .store
        .record_purchase(&caller.client_id, &purchase)
        .await?
    {
        Recorded::New(p) => {
            tracing::info!(%channel, sku = %p.sku, cost = p.cost, sandbox, "purchase recorded");
            for push in gamelink::purchases::updates(&channel, &p, now_ms()) {
                app.notifier.push(caller.client_id.clone(), push).await;
            }
            Ok(json_response(StatusCode::CREATED, &p.listing()))
        }
        Recorded::Known(first) if first.channel != channel.as_str() => Err(ApiError::conflict(
            "this transaction was recorded for another channel",
        )),
        // Answered as the first submission was; nothing fulfilled twice.
        Recorded::Known(first) => Ok(ok(first.listing())),
    }
}

async fn list<S: PurchaseStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    query: QueryMap,
) -> Result<Response, ApiError> {
    caller.require(LISTERS)?;
    let channel = match (caller.role, query.get("channel_id")) {
        (Role::Admin | Role::Backend, Some(ch)) => ChannelId::parse(ch)?,
        (_, Some(ch)) if caller.channel_id.as_ref().is_none_or(|c| c.as_str() != ch) => {
            return Err(ApiError::forbidden("a broadcaster lists their own channel"));
        }
        _ => caller.channel()?.clone(),
    };
    let all = app
        .store
        .channel_purchases(&caller.client_id, &channel)
        .await?;
    let listed: Vec<_> = all.iter().map(Purchase::listing).collect();
    Ok(ok(
        json!({"channel_id": channel.as_str(), "transactions": listed}),
    ))
}

/// The routes, for the dev server to merge with the other functions'.
pub fn routes<S: PurchaseStore + AuthStore>() -> Router<SharedApp<S>> {
    Router::new().route("/v1/e/bits/transactions", post(submit::<S>).get(list::<S>))
}

pub fn router<S: PurchaseStore + AuthStore>(app: SharedApp<S>) -> Router {
    finish(routes::<S>().with_state(app))
}
