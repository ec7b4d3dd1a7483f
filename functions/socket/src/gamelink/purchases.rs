//! `twitchPurchaseBits` (`subscribe` / `unsubscribe {sku}`, `*` for every
//! SKU) and `transaction` (`get {sku}`, `validate {transaction_id,
//! details}`, `refund {transaction_id | sku, user_id}`): the channel's Bits
//! purchases for its broadcaster's game.
//!
//! Delivery is at least once: a purchase is pushed when it is recorded,
//! and every purchase of the channel not yet validated (or refunded) is
//! sent again to a game when it subscribes, so one bought while the game
//! was offline, or pushed while it crashed, reaches it when it comes back.
//! A game confirms with `validate`; after that no game receives it again.

use bytes::Bytes;
use medkit::app::SharedApp;
use medkit::clock::now_ms;
use medkit::gamelink::envelope::GamelinkError;
use medkit::gamelink::purchases::{self, MAX_SKU};
use medkit::gamelink::push::fitting;
use medkit::gamelink::session::Session;
use medkit::ids::{ChannelId, ClientId};
use medkit::purchases::{Purchase, State};
use medkit::store::Moved;
use serde_json::{Value, json};

use super::GameStore;
use super::documents::follow;

const OPEN: [State; 2] = [State::Received, State::Delivered];

fn channel_of(session: &Session) -> Result<&ChannelId, GamelinkError> {
    session
        .login
        .as_ref()
        .map(|l| &l.channel)
        .ok_or_else(|| GamelinkError::forbidden("purchases belong to a broadcaster's game"))
}

fn text<'a>(data: &'a Value, field: &str) -> Result<Option<&'a str>, GamelinkError> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_SKU => Ok(Some(s)),
        Some(_) => Err(GamelinkError::bad_request(format!(
            "{field} is a string of 1 to {MAX_SKU} characters"
        ))),
    }
}

fn sku_of(data: &Value) -> Result<&str, GamelinkError> {
    text(data, "sku")?.ok_or_else(|| GamelinkError::bad_request("sku (or \"*\") is required"))
}

/// The channel's outstanding purchases of `sku` (or `*`).
async fn outstanding<S: GameStore>(
    app: &SharedApp<S>,
    client: &ClientId,
    channel: &ChannelId,
    sku: &str,
) -> Result<Vec<Purchase>, GamelinkError> {
    let all = app.store.channel_purchases(client, channel).await?;
    Ok(all
        .into_iter()
        .filter(|p| p.is_outstanding() && p.matches_sku(sku))
        .collect())
}

/// Notes that a game was sent these (those still `received`).
async fn delivered<S: GameStore>(
    app: &SharedApp<S>,
    client: &ClientId,
    channel: &ChannelId,
    sent: &[Purchase],
) {
    for p in sent.iter().filter(|p| p.state == State::Received) {
        let moved = app
            .store
            .move_purchase(
                client,
                channel,
                &p.id,
                &[State::Received],
                State::Delivered,
                None,
            )
            .await;
        if let Err(e) = moved {
            tracing::warn!(error = %e, "a purchase's delivery not noted");
        }
    }
}

pub async fn bits<S: GameStore>(
    app: &SharedApp<S>,
    session: &Session,
    verb: &str,
    data: &Value,
) -> Result<Value, GamelinkError> {
    let channel = channel_of(session)?;
    let client = &session.client_id;
    let sku = sku_of(data)?;
    match verb {
        "subscribe" => {
            let reply = follow(
                app,
                session,
                verb,
                Some(purchases::subscription(channel, sku)),
            )
            .await?;
            // Everything this game has not confirmed yet, again.
            let open = outstanding(app, client, channel, sku).await?;
            let mut sent = Vec::new();
            for p in open {
                let Some(push) = fitting(
                    purchases::subscription(channel, sku),
                    purchases::TARGET,
                    &p.game_body(),
                    now_ms(),
                ) else {
                    continue;
                };
                match app.poster.post(&session.id, &Bytes::from(push.frame)).await {
                    Ok(()) => sent.push(p),
                    Err(e) => tracing::warn!(error = ?e, "a purchase not delivered again"),
                }
            }
            if !sent.is_empty() {
                tracing::info!(%channel, count = sent.len(), "outstanding purchases delivered on subscribe");
            }
            delivered(app, client, channel, &sent).await;
            Ok(reply)
        }
        "unsubscribe" => {
            follow(
                app,
                session,
                verb,
                Some(purchases::subscription(channel, sku)),
            )
            .await
        }
        other => Err(GamelinkError::bad_request(format!(
            "unknown twitchPurchaseBits action {other:?}: subscribe or unsubscribe"
        ))),
    }
}

pub async fn transaction<S: GameStore>(
    app: &SharedApp<S>,
    session: &Session,
    verb: &str,
    data: &Value,
) -> Result<Value, GamelinkError> {
    let channel = channel_of(session)?;
    let client = &session.client_id;
    match verb {
        "get" => {
            let open = outstanding(app, client, channel, sku_of(data)?).await?;
            delivered(app, client, channel, &open).await;
            let bodies: Vec<Value> = open.iter().map(Purchase::game_body).collect();
            Ok(json!({"transactions": bodies}))
        }
        "validate" => {
            let id = text(data, "transaction_id")?
                .ok_or_else(|| GamelinkError::bad_request("transaction_id is required"))?;
            let details = match data.get("details") {
                None | Some(Value::Null) => None,
                Some(Value::String(d)) if d.len() <= 1024 => Some(d.clone()),
                Some(_) => {
                    return Err(GamelinkError::bad_request(
                        "details is a string of at most 1024 bytes",
                    ));
                }
            };
            let moved = app
                .store
                .move_purchase(client, channel, id, &OPEN, State::Validated, details)
                .await?;
            settled(moved, State::Validated)
        }
        "refund" => {
            let user = text(data, "user_id")?
                .ok_or_else(|| GamelinkError::bad_request("user_id is required"))?;
            let id = match (text(data, "transaction_id")?, text(data, "sku")?) {
                (Some(id), _) => id.to_string(),
                (None, Some(sku)) => {
                    // The user's newest outstanding purchase of that SKU.
                    outstanding(app, client, channel, sku)
                        .await?
                        .into_iter()
                        .find(|p| p.user_id == user)
                        .map(|p| p.id)
                        .ok_or_else(|| {
                            GamelinkError::not_found(
                                "no outstanding purchase of that sku by that user",
                            )
                        })?
                }
                (None, None) => {
                    return Err(GamelinkError::bad_request(
                        "refund needs transaction_id or sku, and user_id",
                    ));
                }
            };
            // The purchase must be that user's.
            match app.store.purchase(client, channel, &id).await? {
                Some(p) if p.user_id == user => {}
                _ => {
                    return Err(GamelinkError::not_found(
                        "no such purchase by that user in this channel",
                    ));
                }
            }
            let moved = app
                .store
                .move_purchase(client, channel, &id, &OPEN, State::Refunded, None)
                .await?;
            settled(moved, State::Refunded)
        }
        other => Err(GamelinkError::bad_request(format!(
            "unknown transaction action {other:?}: get, validate or refund"
        ))),
    }
}

/// The answer to a validate or refund: done (or done before: idempotent),
/// refused when it ended the other way, absent when it is not this
/// channel's.
fn settled(moved: Moved, to: State) -> Result<Value, GamelinkError> {
    match moved {
        Moved::Done(p) => Ok(json!({"ok": true, "state": p.state.as_str()})),
        Moved::Refused(p) if p.state == to => Ok(json!({"ok": true, "state": p.state.as_str()})),
        Moved::Refused(p) => Err(GamelinkError::conflict(format!(
            "this purchase was {} already",
            p.state.as_str()
        ))),
        Moved::Absent => Err(GamelinkError::not_found("no such purchase in this channel")),
    }
}
