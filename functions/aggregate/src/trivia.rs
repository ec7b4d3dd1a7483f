//! Trivia endpoints (`curated_poll*`, `team_membership`). Questions live in
//! one extension-wide document (≤ 64 questions, edited read-modify-write);
//! votes are rank tallies keyed `<team>\x1f<option>`, so replacing a vote and
//! counting per team reuse the rank store's exact, sharded counters.

use std::collections::HashMap;

use axum::extract::State;
use axum::response::Response;
use medkit::aggregate::AggKey;
use medkit::aggregate::rank::top_scores;
use medkit::aggregate::trivia::{
    self, MAX_OPTIONS, Question, Questions, TriviaOption, UNLOCKED, tally_key,
};
use medkit::aggregate::window::expiry_bucket;
use medkit::app::SharedApp;
use medkit::auth::{Caller, Role};
use medkit::clock::now_secs;
use medkit::documents::{MAX_DOC_BYTES, check_size};
use medkit::error::ApiError;
use medkit::http::{JsonBody, QueryMap, ok};
use medkit::ids::{ChannelId, ClientId};
use medkit::store::{AggregateStore, AuthStore, DocKey, DocumentStore};
use serde_json::{Value, json};

/// Who edits trivia and reads the leaderboard.
const EDITORS: &[Role] = &[Role::Broadcaster, Role::Admin, Role::Backend];

/// Tallies of one question: rank keys `<team>\x1f<option>`. The `~` prefix
/// cannot start a caller's id in extension scope (those start `global`).
fn tally(client: &ClientId, question: &str) -> AggKey {
    AggKey::internal(client, format!("~trivia~{question}"))
}

/// Team membership: each viewer "holds" their team's id.
fn teams(client: &ClientId) -> AggKey {
    AggKey::internal(client, "~teams~".into())
}

fn text_field<'a>(body: &'a Value, name: &str) -> Result<&'a str, ApiError> {
    body.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("{name} is required (a string)")))
}

/// Read-modify-write of the questions document.
async fn edit<S: DocumentStore>(
    app: &SharedApp<S>,
    client: &ClientId,
    mut change: impl FnMut(&mut Questions) -> Result<(), ApiError> + Send + 'static,
) -> Result<Questions, ApiError> {
    let doc = app
        .store
        .update_doc(
            &DocKey::trivia_questions(client),
            app.expiry.trivia_secs,
            move |current| {
                let mut qs = Questions::from_doc(current)?;
                change(&mut qs)?;
                let doc = qs.to_doc();
                check_size(&doc, MAX_DOC_BYTES, "the trivia questions")?;
                Ok::<_, ApiError>(doc)
            },
        )
        .await?;
    Questions::from_doc(Some(doc))
}

async fn load<S: DocumentStore>(
    app: &SharedApp<S>,
    client: &ClientId,
) -> Result<Questions, ApiError> {
    Questions::from_doc(app.store.get_doc(&DocKey::trivia_questions(client)).await?)
}

fn question_view(qs: &Questions, id: &str) -> Result<Value, ApiError> {
    qs.get(id)
        .map(|q| q.view(None))
        .ok_or_else(|| ApiError::not_found(format!("no trivia question {id:?}")))
}

pub async fn upsert_question<S: DocumentStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(EDITORS)?;
    let q = Question::parse(&body)?;
    let options_given = body.get("options").is_some();
    let id = q.id.clone();
    let qs = edit(&app, &caller.client_id, move |qs| {
        qs.upsert(q.clone(), options_given).map(|_| ())
    })
    .await?;
    Ok(ok(question_view(&qs, &id)?))
}

pub async fn delete_question<S: DocumentStore + AggregateStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(EDITORS)?;
    let id = text_field(&body, "id")?.to_string();
    let gone = id.clone();
    edit(&app, &caller.client_id, move |qs| {
        qs.questions.retain(|q| q.id != gone);
        Ok(())
    })
    .await?;
    app.store
        .delete_rank(&tally(&caller.client_id, &id))
        .await?;
    Ok(ok(json!({})))
}

pub async fn upsert_option<S: DocumentStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(EDITORS)?;
    let qid = text_field(&body, "id")?.to_string();
    let option = TriviaOption::parse(
        body.get("option")
            .ok_or_else(|| ApiError::bad_request("option is required"))?,
    )?;
    let target = qid.clone();
    let qs = edit(&app, &caller.client_id, move |qs| {
        let q = qs.get_mut(&target)?;
        let count = q.options.len();
        match q.options.iter_mut().find(|o| o.id == option.id) {
            Some(existing) => *existing = option.clone(),
            None if count >= MAX_OPTIONS => {
                return Err(ApiError::bad_request(format!(
                    "a question has at most {MAX_OPTIONS} options"
                )));
            }
            None => q.options.push(option.clone()),
        }
        Ok(())
    })
    .await?;
    Ok(ok(question_view(&qs, &qid)?))
}

pub async fn delete_option<S: DocumentStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(EDITORS)?;
    let qid = text_field(&body, "question")?.to_string();
    let oid = text_field(&body, "option")?.to_string();
    let target = qid.clone();
    let qs = edit(&app, &caller.client_id, move |qs| {
        let q = qs.get_mut(&target)?;
        let before = q.options.len();
        q.options.retain(|o| o.id != oid);
        if q.options.len() == before {
            return Err(ApiError::not_found(format!(
                "no option {oid:?} in {target:?}"
            )));
        }
        if q.winner.as_deref() == Some(oid.as_str()) {
            return Err(ApiError::conflict("that option is the announced winner"));
        }
        Ok(())
    })
    .await?;
    Ok(ok(question_view(&qs, &qid)?))
}

pub async fn transition<S: DocumentStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    query: QueryMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(EDITORS)?;
    let qid = query
        .get("id")
        .filter(|s| !s.is_empty())
        .or_else(|| body.get("id").and_then(Value::as_str))
        .ok_or_else(|| ApiError::bad_request("query parameter id (the question) is required"))?
        .to_string();
    let to = text_field(&body, "transition")?.to_string();
    let winner = body
        .get("winner")
        .and_then(Value::as_str)
        .map(str::to_string);
    let target = qid.clone();
    let qs = edit(&app, &caller.client_id, move |qs| {
        qs.get_mut(&target)?.transition(&to, winner.as_deref())
    })
    .await?;
    let state = qs.get(&qid).map(|q| q.state.clone()).unwrap_or_default();
    Ok(ok(json!({ "state": state })))
}

/// The caller's team: the channel of their first trivia vote. `join` makes
/// a viewer without one a member of their current channel's team.
async fn team_of<S: AggregateStore>(
    app: &SharedApp<S>,
    caller: &Caller,
    join: bool,
) -> Result<Option<String>, ApiError> {
    let voter = caller.voter_id()?;
    let key = teams(&caller.client_id);
    if let Some(team) = app.store.rank_key(&key, &voter).await? {
        return Ok(Some(team));
    }
    if !join {
        return Ok(None);
    }
    let team = caller.channel()?.to_string();
    let bucket = expiry_bucket(now_secs(), app.expiry.trivia_secs);
    app.store.set_rank_key(&key, &voter, &team, bucket).await?;
    Ok(Some(team))
}

pub async fn vote<S: DocumentStore + AggregateStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let qid = text_field(&body, "question_id")?.to_string();
    let option = text_field(&body, "vote")?.to_string();
    let qs = load(&app, &caller.client_id).await?;
    let q = qs
        .get(&qid)
        .filter(|q| q.is_visible_to_viewers())
        .ok_or_else(|| ApiError::not_found(format!("no trivia question {qid:?}")))?;
    if q.state != UNLOCKED {
        return Err(ApiError::conflict(format!(
            "question {qid:?} is not open for votes ({})",
            q.state
        )));
    }
    if !q.has_option(&option) {
        return Err(ApiError::bad_request(format!(
            "{option:?} is not an option of question {qid:?}"
        )));
    }
    let voter = caller.voter_id()?;
    let team = team_of(&app, &caller, true).await?.unwrap_or_default();
    let bucket = expiry_bucket(now_secs(), app.expiry.trivia_secs);
    app.store
        .set_rank_key(
            &tally(&caller.client_id, &qid),
            &voter,
            &tally_key(&team, &option),
            bucket,
        )
        .await?;
    let mut docs = vec![DocKey::trivia_answers(&caller.client_id, &voter)];
    if caller.role == Role::Broadcaster {
        docs.push(DocKey::trivia_broadcaster(
            &caller.client_id,
            caller.channel()?,
        ));
    }
    for key in docs {
        let (q, o) = (qid.clone(), option.clone());
        app.store
            .update_doc(&key, app.expiry.trivia_secs, move |cur| {
                let mut answers = cur.filter(Value::is_object).unwrap_or_else(|| json!({}));
                answers[&q] = json!(o);
                Ok::<_, ApiError>(answers)
            })
            .await?;
    }
    Ok(ok(json!({})))
}

pub async fn read<S: DocumentStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    query: QueryMap,
) -> Result<Response, ApiError> {
    let qs = load(&app, &caller.client_id).await?;
    let editor = EDITORS.contains(&caller.role);
    let answers = match caller.voter_id() {
        Ok(v) => app
            .store
            .get_doc(&DocKey::trivia_answers(&caller.client_id, &v))
            .await?
            .unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    let view = |q: &Question| q.view(answers.get(&q.id).and_then(Value::as_str));
    let visible = |q: &&Question| editor || q.is_visible_to_viewers();
    if let Some(id) = query.get("id").filter(|s| !s.is_empty()) {
        let q = qs
            .get(id)
            .filter(visible)
            .ok_or_else(|| ApiError::not_found(format!("no trivia question {id:?}")))?;
        return Ok(ok(view(q)));
    }
    let list: Vec<Value> = qs.questions.iter().filter(visible).map(view).collect();
    Ok(ok(json!({ "questions": list })))
}

pub async fn team<S: AggregateStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    method: axum::http::Method,
) -> Result<Response, ApiError> {
    let team = team_of(&app, &caller, method == axum::http::Method::POST).await?;
    Ok(ok(json!({ "id": team })))
}

pub async fn leaderboard<S: DocumentStore + AggregateStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    caller.require(EDITORS)?;
    let client = &caller.client_id;
    let qs = load(&app, client).await?;
    let sizes: HashMap<String, i64> =
        top_scores(app.store.rank_counts(&teams(client)).await?, usize::MAX)
            .into_iter()
            .collect();
    let mut tallies = HashMap::new();
    for q in &qs.questions {
        tallies.insert(
            q.id.clone(),
            app.store.rank_counts(&tally(client, &q.id)).await?,
        );
    }
    let team_ids: Vec<ChannelId> = sizes
        .keys()
        .filter_map(|t| ChannelId::parse(t.as_str()).ok())
        .collect();
    let keys: Vec<DocKey> = team_ids
        .iter()
        .map(|t| DocKey::trivia_broadcaster(client, t))
        .collect();
    let docs = app.store.get_docs(&keys).await?;
    let broadcaster_answers: HashMap<String, HashMap<String, String>> = team_ids
        .iter()
        .zip(docs)
        .filter_map(|(t, d)| Some((t.to_string(), serde_json::from_value(d?).ok()?)))
        .collect();
    Ok(ok(trivia::leaderboard(
        &qs,
        &sizes,
        &tallies,
        &broadcaster_answers,
    )))
}
