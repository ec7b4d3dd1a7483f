//! The `match` target (`create`, `keepalive`, `add_channels`,
//! `remove_channels`, `broadcast`) and `match_poll` (`create`, `delete`,
//! `reconfigure`, `subscribe`, `unsubscribe`): a game server's matches,
//! only for a server session (see `medkit::gamelink::matches`).

use futures_util::StreamExt;
use medkit::app::SharedApp;
use medkit::clock::now_secs;
use medkit::delivery::send::{self, Message, Scope};
use medkit::error::StoreError;
use medkit::game_matches;
use medkit::game_polls;
use medkit::gamelink::envelope::GamelinkError;
use medkit::gamelink::matches::{self, Match, MatchPoll};
use medkit::gamelink::poll::{self, Poll, Status};
use medkit::gamelink::session::Session;
use medkit::ids::ClientId;
use medkit::realtime::envelope::{self as frames, Target};
use medkit::timers;
use serde_json::{Value, json};

use super::documents::follow;
use super::{GameStore, Refused, stored};

/// Channels written (or sent to) at once by one request.
const IN_FLIGHT: usize = 8;

/// Runs `work`, [`IN_FLIGHT`] at a time.
async fn in_flight<F: std::future::Future>(work: impl Iterator<Item = F>) -> Vec<F::Output> {
    futures_util::stream::iter(work)
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await
}

fn server_only(session: &Session) -> Result<(), GamelinkError> {
    if session.server {
        Ok(())
    } else {
        Err(GamelinkError::forbidden(
            "matches are run by a game server: authenticate with {jwt, client_id}, a backend \
             or admin token the extension signed",
        ))
    }
}

fn no_match(id: &str) -> GamelinkError {
    GamelinkError::not_found(format!(
        "no match {id:?}: create it first (or it idled out)"
    ))
}

pub async fn match_verbs<S: GameStore>(
    app: &SharedApp<S>,
    session: &Session,
    verb: &str,
    data: &Value,
) -> Result<Value, GamelinkError> {
    server_only(session)?;
    let client = &session.client_id;
    match verb {
        // Creating an existing match keeps it (a server that reconnects
        // creates its matches again): channels and polls stay.
        "create" => {
            let id = matches::match_id_of(data, "id")?;
            let now = now_secs();
            let fresh = Match::new(&id, now);
            write_match(app, client, id.as_str(), move |m| {
                Ok(m.unwrap_or_else(|| fresh.clone()))
            })
            .await?;
            tracing::info!(client = %client, id = %id, "GameLink match created");
            Ok(json!({"ok": true}))
        }
        "keepalive" => {
            let id = matches::match_id_of(data, "id")?;
            let missing = no_match(id.as_str());
            write_match(app, client, id.as_str(), move |m| {
                m.ok_or_else(|| missing.clone())
            })
            .await?;
            Ok(json!({"ok": true}))
        }
        "add_channels" | "remove_channels" => {
            let id = matches::match_id_of(data, "id")?;
            let channels = matches::channels_of(data)?;
            let missing = no_match(id.as_str());
            let add = verb == "add_channels";
            let m = write_match(app, client, id.as_str(), move |m| {
                let mut m = m.ok_or_else(|| missing.clone())?;
                if add {
                    m.add(&channels)?;
                } else {
                    m.remove(&channels);
                }
                Ok(m)
            })
            .await?;
            Ok(json!({"ok": true, "channels": m.channels}))
        }
        "broadcast" => broadcast(app, client, data).await,
        other => Err(GamelinkError::bad_request(format!(
            "unknown match action {other:?}: create, keepalive, add_channels, remove_channels \
             or broadcast"
        ))),
    }
}

/// Rewrites a match (its idle time starts again); `change` gets the
/// current one, if any.
async fn write_match<S: GameStore>(
    app: &SharedApp<S>,
    client: &ClientId,
    id: &str,
    change: impl FnMut(Option<Match>) -> Result<Match, GamelinkError> + Send + 'static,
) -> Result<Match, GamelinkError> {
    let mut change = change;
    let written = app
        .store
        .update_doc(
            &game_matches::key(client, id),
            game_matches::match_ttl_secs(),
            move |cur| {
                let current: Option<Match> = cur.and_then(|v| serde_json::from_value(v).ok());
                stored(&change(current).map_err(Refused::Game)?)
            },
        )
        .await
        .map_err(GamelinkError::from)?;
    serde_json::from_value(written).map_err(|e| StoreError::Internal(e.to_string()).into())
}

async fn existing_match<S: GameStore>(
    app: &SharedApp<S>,
    client: &ClientId,
    id: &str,
) -> Result<Match, GamelinkError> {
    game_matches::load_match(&app.store, client, id)
        .await?
        .ok_or_else(|| no_match(id))
}

/// `broadcast {match_id, topic, data}`: every channel of the match hears
/// it, each through the same envelope, budget and fan-out as the channel's
/// own broadcasts. A channel whose budget is spent is skipped and named.
async fn broadcast<S: GameStore>(
    app: &SharedApp<S>,
    client: &ClientId,
    data: &Value,
) -> Result<Value, GamelinkError> {
    let id = matches::match_id_of(data, "match_id")?;
    let topic = match data.get("topic") {
        Some(Value::String(t)) => t.clone(),
        _ => {
            return Err(GamelinkError::bad_request(
                "broadcast needs topic: a string",
            ));
        }
    };
    frames::validate_event(&topic)?;
    let body = data.get("data").cloned().unwrap_or_else(|| json!({}));
    // The envelope's size rules, once, before anything is sent.
    frames::message(app.env, client, &topic, &body)?;
    let m = existing_match(app, client, id.as_str()).await?;
    let sends = m.channel_ids().into_iter().map(|ch| {
        let message = Message {
            event: topic.clone(),
            target: Target::Broadcast,
            data: body.clone(),
        };
        async move {
            let fanout = app.fanout();
            let out = send::send(
                app.env,
                &fanout,
                client,
                Scope::Channel(ch.clone()),
                message,
                None,
            )
            .await;
            (ch, out)
        }
    });
    let results = in_flight(sends).await;
    let channels = results.len();
    let refused: serde_json::Map<String, Value> = results
        .into_iter()
        .filter_map(|(ch, out)| {
            out.err()
                .map(|e| (ch.to_string(), json!(GamelinkError::from(e).detail)))
        })
        .collect();
    if !refused.is_empty() {
        tracing::warn!(match_id = %id, refused = refused.len(), "match broadcast refused on some channels");
    }
    Ok(json!({"ok": refused.is_empty(), "channels": channels, "refused": refused}))
}

pub async fn match_poll<S: GameStore>(
    app: &SharedApp<S>,
    session: &Session,
    verb: &str,
    data: &Value,
) -> Result<Value, GamelinkError> {
    server_only(session)?;
    let client = &session.client_id;
    match verb {
        "create" => create_poll(app, client, data).await,
        "delete" => {
            let id = matches::match_id_of(data, "id")?;
            let poll_id = poll::poll_id_of(data, "poll_id")?;
            delete_poll(app, client, id.as_str(), poll_id.as_str()).await?;
            Ok(json!({"ok": true}))
        }
        "reconfigure" => reconfigure_poll(app, client, data).await,
        "subscribe" | "unsubscribe" => {
            let id = matches::match_id_of(data, "topic_id")?;
            follow(
                app,
                session,
                verb,
                Some(matches::poll_subscription(id.as_str())),
            )
            .await
        }
        other => Err(GamelinkError::bad_request(format!(
            "unknown match_poll action {other:?}: create, delete, reconfigure, subscribe or \
             unsubscribe"
        ))),
    }
}

/// `create {id, poll: {poll_id, prompt, options, config?, user_data?}}`: the
/// poll in every channel of the match (refused, writing nothing, when one
/// of them runs a poll of that id of its own), then the match's record.
async fn create_poll<S: GameStore>(
    app: &SharedApp<S>,
    client: &ClientId,
    data: &Value,
) -> Result<Value, GamelinkError> {
    let id = matches::match_id_of(data, "id")?;
    let now = now_secs();
    let mut poll = poll::parse_create(
        data.get("poll").unwrap_or(&Value::Null),
        now,
        medkit::random::token_id(12),
    )?;
    poll.match_id = Some(id.as_str().to_string());
    let m = existing_match(app, client, id.as_str()).await?;
    if m.channels.is_empty() {
        return Err(GamelinkError::conflict(
            "this match has no channels: add_channels first",
        ));
    }
    let mp = MatchPoll {
        match_id: id.as_str().to_string(),
        poll: poll.clone(),
        channels: m.channels.clone(),
    };
    // The match's record first: two creates of one id cannot both win.
    let record = mp.clone();
    app.store
        .update_doc(
            &game_matches::poll_key(client, id.as_str(), &poll.poll_id),
            game_polls::ttl_secs(app),
            move |cur| match cur {
                Some(_) => Err(Refused::Game(GamelinkError::conflict(
                    "this match runs a poll with this id: delete it first",
                ))),
                None => stored(&record),
            },
        )
        .await
        .map_err(GamelinkError::from)?;
    if let Err(e) = write_parts(app, client, &mp).await {
        // Undo what was written, so the create changed nothing.
        delete_poll(app, client, id.as_str(), &poll.poll_id)
            .await
            .ok();
        return Err(e);
    }
    timers::match_poll_times(app, client, &mp).await;
    tracing::info!(client = %client, match_id = %id, poll = %poll.poll_id, channels = mp.channels.len(), "GameLink match poll created");
    let per = game_matches::figures(app, client, &mp).await?;
    if poll.status(now) == Status::Active
        && let Some(push) = game_matches::update(&mp, &per)
    {
        app.notifier.push(client.clone(), push).await;
    }
    Ok(mp.body(&per, now))
}

/// Each channel's part of a match poll; refused when a channel runs a poll
/// of that id that is not this match's.
async fn write_parts<S: GameStore>(
    app: &SharedApp<S>,
    client: &ClientId,
    mp: &MatchPoll,
) -> Result<(), GamelinkError> {
    let writes = mp.channel_ids().into_iter().map(|ch| {
        let part = mp.poll.clone();
        async move {
            let match_id = mp.match_id.clone();
            app.store
                .update_doc(
                    &game_polls::key(client, &ch, &part.poll_id),
                    game_polls::ttl_secs(app),
                    move |cur| {
                        let theirs = cur
                            .and_then(|v| serde_json::from_value::<Poll>(v).ok())
                            .is_some_and(|p| p.match_id.as_deref() != Some(match_id.as_str()));
                        if theirs {
                            return Err(Refused::Game(GamelinkError::conflict(format!(
                                "channel {ch} runs a poll {:?} of its own",
                                part.poll_id
                            ))));
                        }
                        stored(&part)
                    },
                )
                .await
                .map(|_| ())
                .map_err(GamelinkError::from)
        }
    });
    let results = in_flight(writes).await;
    results.into_iter().collect()
}

/// Deletes a match poll: each channel's part and votes (a channel's own
/// poll of that id is left alone), then the record. Absent is fine (the
/// library deletes before it creates).
async fn delete_poll<S: GameStore>(
    app: &SharedApp<S>,
    client: &ClientId,
    id: &str,
    poll_id: &str,
) -> Result<(), GamelinkError> {
    let Some(mp) = game_matches::load_poll(&app.store, client, id, poll_id).await? else {
        return Ok(());
    };
    let deletes = mp.channel_ids().into_iter().map(|ch| async move {
        let key = game_polls::key(client, &ch, poll_id);
        let ours = game_polls::load(&app.store, client, &ch, poll_id)
            .await?
            .is_some_and(|p| p.match_id.as_deref() == Some(id));
        if ours {
            app.store.delete_doc(&key).await?;
            app.store
                .delete_poll(&game_polls::votes(client, &ch, poll_id))
                .await?;
        }
        Ok::<_, StoreError>(())
    });
    let results = in_flight(deletes).await;
    results.into_iter().collect::<Result<(), _>>()?;
    app.store
        .delete_doc(&game_matches::poll_key(client, id, poll_id))
        .await?;
    Ok(())
}

/// `reconfigure {id, poll_id, config}` (`endsAt: -1` stops it; `disabled`):
/// the record first (it claims the one `expired` update), then each
/// channel's part, so REST votes follow.
async fn reconfigure_poll<S: GameStore>(
    app: &SharedApp<S>,
    client: &ClientId,
    data: &Value,
) -> Result<Value, GamelinkError> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let id = matches::match_id_of(data, "id")?;
    let poll_id = poll::poll_id_of(data, "poll_id")?;
    let config = data.get("config").cloned().unwrap_or(Value::Null);
    let now = now_secs();
    let claimed = Arc::new(AtomicBool::new(false));
    let claim = claimed.clone();
    let written = app
        .store
        .update_doc(
            &game_matches::poll_key(client, id.as_str(), poll_id.as_str()),
            game_polls::ttl_secs(app),
            move |cur| {
                let mut mp: MatchPoll = cur
                    .and_then(|v| serde_json::from_value(v).ok())
                    .ok_or_else(|| {
                        Refused::Game(GamelinkError::not_found("no such poll in this match"))
                    })?;
                mp.poll.reconfigure(&config, now).map_err(Refused::Game)?;
                let announce = mp.poll.status(now) == Status::Expired && !mp.poll.expiry_sent;
                mp.poll.expiry_sent |= announce;
                claim.store(announce, Ordering::Relaxed);
                stored(&mp)
            },
        )
        .await
        .map_err(GamelinkError::from)?;
    let mp: MatchPoll =
        serde_json::from_value(written).map_err(|e| StoreError::Internal(e.to_string()))?;
    // The parts take the record's config (its stop, its disabling).
    let mp = &mp;
    let parts = mp.channel_ids().into_iter().map(|ch| {
        let config = mp.poll.config.clone();
        async move {
            app.store
                .update_doc(
                    &game_polls::key(client, &ch, &mp.poll.poll_id),
                    game_polls::ttl_secs(app),
                    move |cur| {
                        let mut part: Poll = cur
                            .and_then(|v| serde_json::from_value(v).ok())
                            .ok_or(Refused::Game(GamelinkError::not_found("gone")))?;
                        part.config = config.clone();
                        stored(&part)
                    },
                )
                .await
                .map(|_| ())
                // A part deleted by its channel's game is no part any more.
                .or_else(|e| match e {
                    Refused::Game(_) => Ok(()),
                    Refused::Store(e) => Err(e),
                })
        }
    });
    let results = in_flight(parts).await;
    results.into_iter().collect::<Result<(), _>>()?;
    if mp.poll.status(now) != Status::Expired {
        timers::match_poll_times(app, client, mp).await;
    }
    let per = game_matches::figures(app, client, mp).await?;
    if claimed.load(Ordering::Relaxed)
        && let Some(push) = game_matches::update(mp, &per)
    {
        app.notifier.push(client.clone(), push).await;
    }
    Ok(mp.body(&per, now))
}
