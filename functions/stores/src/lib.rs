//! The `stores` function: state, config and the JSON store (CONTRACT §3).
//!
//! Every document endpoint is described by a [`Doc`]: which key it reads and
//! writes for a caller, who may write it, its size limit and expiry, and the
//! event a write emits. The handlers are generic over the store adapter.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, patch, post};
use medkit::app::SharedApp;
use medkit::auth::Caller;
use medkit::documents::{
    self, MAX_ATOMIC_IDS, MAX_DOC_BYTES, MAX_IDS, MAX_JSON_STORE_BYTES, Patch,
};
use medkit::error::ApiError;
use medkit::http::{JsonBody, QueryMap, finish, ok, ok_text};
use medkit::ids::{ChannelId, ClientId, JsonKey, ViewerId};
use medkit::realtime::event::{Audience, Event};
use medkit::store::{AuthStore, DocKey, DocumentStore};
use medkit::stores::{self, CHANNEL_WRITERS, Doc, PRIVILEGED};
use serde_json::{Map, Value, json};

async fn read_doc<S: DocumentStore>(
    app: SharedApp<S>,
    caller: Caller,
    doc: Doc,
) -> Result<Response, ApiError> {
    let text = stores::read_text(&app, &caller, doc).await?;
    Ok(ok_text(text.unwrap_or_else(|| "{}".into())))
}

async fn replace_doc<S: DocumentStore>(
    app: SharedApp<S>,
    caller: Caller,
    doc: Doc,
    body: Value,
) -> Result<Response, ApiError> {
    Ok(ok(stores::replace(&app, &caller, doc, body).await?))
}

async fn patch_doc<S: DocumentStore>(
    app: SharedApp<S>,
    caller: Caller,
    doc: Doc,
    body: Value,
) -> Result<Response, ApiError> {
    Ok(ok(stores::patch(&app, &caller, doc, body).await?))
}

/// Admin map PATCH (`{"<id>": patch, …}`): all or nothing. Every patch is
/// applied to the current documents in one atomic write, so bad input, or a
/// patch that a concurrent writer made fail, changes nothing.
async fn patch_many<S: DocumentStore>(
    app: &SharedApp<S>,
    client: &ClientId,
    body: Value,
    doc: Doc,
    key_of: impl Fn(&str) -> Result<DocKey, ApiError>,
) -> Result<Response, ApiError> {
    let Value::Object(entries) = body else {
        return Err(ApiError::bad_request(
            "body must be an object of id → patch",
        ));
    };
    if entries.len() > MAX_ATOMIC_IDS {
        return Err(ApiError::bad_request(format!(
            "Too many ids specified (at most {MAX_ATOMIC_IDS} per PATCH)"
        )));
    }
    let mut keys = Vec::with_capacity(entries.len());
    let mut plan = Vec::with_capacity(entries.len());
    for (id, patch) in entries {
        keys.push(key_of(&id)?);
        plan.push((id, Patch::parse(patch)?));
    }
    let what = doc.name();
    let ids: Vec<String> = plan.iter().map(|(id, _)| id.clone()).collect();
    let news = app
        .store
        .update_docs(&keys, doc.ttl(app), move |i, cur| {
            let (id, patch) = &plan[i];
            patch.apply(cur, MAX_DOC_BYTES, what).map_err(|e| match e {
                ApiError::BadRequest(r) => ApiError::bad_request(format!("{id}: {r}")),
                ApiError::TooLarge(r) => ApiError::too_large(format!("{id}: {r}")),
                other => other,
            })
        })
        .await?;
    for (id, new) in ids.iter().zip(&news) {
        // A channel config's games hear of it; extension viewer state has none.
        let channel = ChannelId::parse(id).ok();
        stores::announce_for(app, client, channel.as_ref(), doc, new).await;
    }
    let out: Map<String, Value> = ids.into_iter().zip(news).collect();
    Ok(ok(Value::Object(out)))
}

fn parse_ids(list: &str) -> Result<Vec<String>, ApiError> {
    let ids: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if ids.len() > MAX_IDS {
        return Err(ApiError::bad_request("Too many ids specified"));
    }
    Ok(ids)
}

async fn get_extension_viewer_state<S: DocumentStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    query: QueryMap,
) -> Result<Response, ApiError> {
    let Some(list) = query.get("user_ids") else {
        return read_doc(app, caller, Doc::ExtensionViewerState).await;
    };
    caller.require(PRIVILEGED)?;
    let ids = parse_ids(list)?;
    let keys = ids
        .iter()
        .map(|id| MapDoc::ExtensionViewerState.key(&caller.client_id, id))
        .collect::<Result<Vec<_>, ApiError>>()?;
    let docs = app.store.get_docs(&keys).await?;
    let found: Map<String, Value> = ids
        .into_iter()
        .zip(docs)
        .filter_map(|(id, doc)| doc.map(|d| (id, d)))
        .collect();
    Ok(ok(Value::Object(found)))
}

/// Documents an admin/backend can PATCH for many ids at once
/// (`{"<id>": patch, …}`); everyone else PATCHes their own.
#[derive(Debug, Clone, Copy)]
enum MapDoc {
    /// Keyed by user id.
    ExtensionViewerState,
    /// Keyed by channel id.
    ChannelConfig,
}

impl MapDoc {
    fn doc(self) -> Doc {
        match self {
            MapDoc::ExtensionViewerState => Doc::ExtensionViewerState,
            MapDoc::ChannelConfig => Doc::ChannelConfig,
        }
    }

    /// The document of one id of the map.
    fn key(self, client: &ClientId, id: &str) -> Result<DocKey, ApiError> {
        Ok(match self {
            MapDoc::ExtensionViewerState => {
                DocKey::extension_viewer_state(client, &ViewerId::parse(id)?)
            }
            MapDoc::ChannelConfig => DocKey::channel_config(client, &ChannelId::parse(id)?),
        })
    }
}

async fn patch_own_or_map<S: DocumentStore>(
    app: SharedApp<S>,
    caller: Caller,
    map: MapDoc,
    body: Value,
) -> Result<Response, ApiError> {
    if !caller.role.is_privileged() {
        return patch_doc(app, caller, map.doc(), body).await;
    }
    let client = caller.client_id.clone();
    patch_many(&app, &client, body, map.doc(), |id| map.key(&client, id)).await
}

/// Several documents read in one store round trip; absent ones are `{}`.
async fn combined<S: DocumentStore>(
    app: &SharedApp<S>,
    parts: Vec<(&'static str, Option<DocKey>)>,
) -> Result<Response, ApiError> {
    let keys: Vec<DocKey> = parts.iter().filter_map(|(_, k)| k.clone()).collect();
    let mut docs = app.store.get_docs(&keys).await?.into_iter();
    let mut out = Map::new();
    for (name, key) in parts {
        let doc = match key {
            Some(_) => docs.next().flatten(),
            None => None,
        };
        out.insert(name.into(), doc.unwrap_or_else(|| json!({})));
    }
    Ok(ok(Value::Object(out)))
}

async fn all_state<S: DocumentStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let has_viewer = caller.viewer_id().is_ok();
    let has_channel = caller.channel_id.is_some();
    let key = |doc: Doc, available: bool| {
        if available {
            doc.key(&caller).ok()
        } else {
            None
        }
    };
    combined(
        &app,
        vec![
            ("extension", key(Doc::ExtensionState, true)),
            ("channel", key(Doc::ChannelState, has_channel)),
            ("viewer", key(Doc::ViewerState, has_channel && has_viewer)),
            (
                "extension_viewer",
                key(Doc::ExtensionViewerState, has_viewer),
            ),
        ],
    )
    .await
}

async fn all_config<S: DocumentStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let channel = caller
        .channel_id
        .is_some()
        .then(|| Doc::ChannelConfig.key(&caller).ok())
        .flatten();
    combined(
        &app,
        vec![
            ("channel", channel),
            ("extension", Doc::ExtensionConfig.key(&caller).ok()),
        ],
    )
    .await
}

/// `json_store?id=<key>`: the key and the document it names for this caller.
fn json_store_key(caller: &Caller, query: &QueryMap) -> Result<(JsonKey, DocKey), ApiError> {
    let id = JsonKey::parse(query.require("id")?)?;
    let channel = if id.is_global() {
        None
    } else {
        Some(caller.channel()?)
    };
    let key = DocKey::json_store(&caller.client_id, channel, &id);
    Ok((id, key))
}

async fn get_json_store<S: DocumentStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    query: QueryMap,
) -> Result<Response, ApiError> {
    let (_, key) = json_store_key(&caller, &query)?;
    let text = app.store.get_doc_text(&key).await?;
    Ok(ok_text(text.unwrap_or_else(|| "{}".into())))
}

async fn post_json_store<S: DocumentStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    query: QueryMap,
    JsonBody(value): JsonBody,
) -> Result<Response, ApiError> {
    let (id, key) = json_store_key(&caller, &query)?;
    // Extension-wide keys are shared by every channel: only the extension may write them.
    caller.require(if id.is_global() {
        PRIVILEGED
    } else {
        CHANNEL_WRITERS
    })?;
    documents::check_size(&value, MAX_JSON_STORE_BYTES, "JSON store value")?;
    app.store
        .put_doc(&key, &value, app.expiry.json_store_secs)
        .await?;
    let audience = match &caller.channel_id {
        Some(ch) if !id.is_global() => Audience::Channel(ch.clone()),
        _ => Audience::Extension,
    };
    let event = Event {
        client_id: caller.client_id.clone(),
        audience,
        name: format!("json_store_update:{id}"),
        data: json!({"id": id.as_str(), "value": value}),
        games: None,
    };
    app.notifier.notify(event).await;
    Ok(ok(value))
}

type Route<S> = axum::routing::MethodRouter<SharedApp<S>>;

fn read_route<S: DocumentStore + AuthStore>(doc: Doc) -> Route<S> {
    get(move |State(app): State<SharedApp<S>>, caller: Caller| read_doc(app, caller, doc))
}

fn replace_route<S: DocumentStore + AuthStore>(doc: Doc) -> Route<S> {
    post(
        move |State(app): State<SharedApp<S>>, caller: Caller, JsonBody(b): JsonBody| {
            replace_doc(app, caller, doc, b)
        },
    )
}

fn map_patch_route<S: DocumentStore + AuthStore>(map: MapDoc) -> Route<S> {
    patch(
        move |State(app): State<SharedApp<S>>, caller: Caller, JsonBody(b): JsonBody| {
            patch_own_or_map(app, caller, map, b)
        },
    )
}

fn patch_route<S: DocumentStore + AuthStore>(doc: Doc) -> Route<S> {
    patch(
        move |State(app): State<SharedApp<S>>, caller: Caller, JsonBody(b): JsonBody| {
            patch_doc(app, caller, doc, b)
        },
    )
}

/// GET/POST/PATCH of the caller's own document.
fn doc_routes<S: DocumentStore + AuthStore>(doc: Doc) -> Route<S> {
    read_route(doc)
        .merge(replace_route(doc))
        .merge(patch_route(doc))
}

/// The routes, without the common layers (the dev server merges several functions).
pub fn routes<S: DocumentStore + AuthStore>() -> Router<SharedApp<S>> {
    Router::new()
        .route("/v1/e/all_state", get(all_state::<S>))
        .route("/v1/e/extension_state", doc_routes(Doc::ExtensionState))
        .route("/v1/e/channel_state", doc_routes(Doc::ChannelState))
        .route("/v1/e/viewer_state", doc_routes(Doc::ViewerState))
        .route(
            "/v1/e/extension_viewer_state",
            get(get_extension_viewer_state::<S>)
                .merge(replace_route(Doc::ExtensionViewerState))
                .merge(map_patch_route(MapDoc::ExtensionViewerState)),
        )
        .route("/v1/e/extension_hidden_state", doc_routes(Doc::HiddenState))
        .route("/v1/e/config", get(all_config::<S>))
        .route("/v1/e/config/extension", doc_routes(Doc::ExtensionConfig))
        .route(
            "/v1/e/config/channel",
            read_route(Doc::ChannelConfig)
                .merge(replace_route(Doc::ChannelConfig))
                .merge(map_patch_route(MapDoc::ChannelConfig)),
        )
        .route(
            "/v1/e/json_store",
            get(get_json_store::<S>).post(post_json_store::<S>),
        )
}

/// The complete router this function serves.
pub fn router<S: DocumentStore + AuthStore>(app: SharedApp<S>) -> Router {
    finish(routes::<S>().with_state(app))
}
