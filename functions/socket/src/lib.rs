//! The `socket` function: the API Gateway WebSocket API's routes.
//!
//! - `$connect` (`wss://…/{stage}?client_id=…&token=…`; browsers cannot set
//!   headers on a WebSocket): the token is verified exactly as a REST call's
//!   `Authorization` would be, then the connection is recorded for 2 hours.
//!   A refusal is the HTTP status of the handshake (401/403) with a reason.
//!   Without a token it is a game's connection ([`gamelink`]): the client id
//!   must be a registered extension, and the game authenticates in-band.
//! - `$disconnect`: the record is deleted.
//! - `$default`: a GameLink request (a frame with an `action`) gets its one
//!   reply ([`gamelink::answer`]); `{"type": "ping"}` (or `ping`) is answered
//!   `{"type": "pong"}`; anything else gets an error frame
//!   `{"type": "error", "reason": …}`.
//!   Sockets only receive: sends go through `POST /v1/e/broadcast`.
//!
//! The dev server calls [`connect`], [`disconnect`] and [`reply`] for its
//! own WebSocket endpoint, so both run the same code.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use medkit::app::{App, SharedApp};
use medkit::clock::now_secs;
use medkit::error::ApiError;
use medkit::ids::ConnectionId;
use medkit::lambda::Handled;
use medkit::realtime::Connection;
use medkit::store::{AuthStore, ConnectionStore};

pub mod gamelink;

use gamelink::GameStore;
use serde_json::{Value, json};

/// Verifies the caller of a `$connect` and records the connection.
pub async fn connect<S: AuthStore + ConnectionStore>(
    app: &App<S>,
    id: ConnectionId,
    client_id: Option<&str>,
    token: Option<&str>,
) -> Result<Connection, ApiError> {
    let client_id = client_id
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::unauthorized("query parameter client_id is required"))?;
    let token = token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("query parameter token is required"))?;
    let header = format!("{client_id} {token}");
    let caller = app.authenticate(Some(&header)).await?;
    let conn = Connection::for_caller(id, &caller, now_secs())?;
    app.store.add_connection(&conn).await?;
    tracing::info!(
        connection = %conn.id.redacted(),
        client = %conn.client_id,
        channel = ?conn.channel_id,
        role = conn.role.as_str(),
        "connected"
    );
    Ok(conn)
}

/// Forgets a connection (a second disconnect is harmless).
pub async fn disconnect<S: ConnectionStore>(
    app: &App<S>,
    id: &ConnectionId,
) -> Result<(), ApiError> {
    let gone = app.store.remove_connection(id).await?;
    tracing::info!(connection = %id.redacted(), known = gone.is_some(), "disconnected");
    Ok(())
}

/// The answer to a message a client sent on its socket.
pub fn reply(message: &str) -> String {
    let text = message.trim();
    let is_ping = text == "ping"
        || serde_json::from_str::<Value>(text)
            .is_ok_and(|v| v.get("type").and_then(Value::as_str) == Some("ping"));
    if is_ping {
        json!({"type": "pong"}).to_string()
    } else {
        json!({
            "type": "error",
            "reason": "this socket only receives broadcasts; send {\"type\":\"ping\"} to keep it \
                       alive, and POST /v1/e/broadcast to send",
        })
        .to_string()
    }
}

/// One WebSocket API event, as Lambda delivers it.
pub async fn handle<S: GameStore>(
    app: &SharedApp<S>,
    event: ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let ctx = &event.request_context;
    let route = ctx.route_key.as_deref().unwrap_or_default();
    let id = match ctx.connection_id.as_deref().map(ConnectionId::parse) {
        Some(Ok(id)) => id,
        _ => return error(ApiError::bad_request("the event has no connection id")),
    };
    match route {
        "$connect" => {
            let q = &event.query_string_parameters;
            let opened = match q.first("token") {
                Some(token) => connect(app, id, q.first("client_id"), Some(token))
                    .await
                    .map(|_| ()),
                // No token: a game, which authenticates in-band.
                None => gamelink::open(app, id, q.first("client_id"))
                    .await
                    .map(|_| ()),
            };
            match opened {
                Ok(()) => response(200, None),
                Err(e) => error(e),
            }
        }
        "$disconnect" => match disconnect(app, &id).await {
            Ok(()) => response(200, None),
            Err(e) => error(e),
        },
        _ => {
            let body = event.body.as_deref().unwrap_or_default();
            if !is_gamelink_frame(body) {
                return response(200, Some(reply(body)));
            }
            let answer = gamelink::answer(app, &id, body).await;
            if !answer.close {
                return response(200, Some(answer.reply));
            }
            // The route response would arrive after the connection is
            // gone: post the reply first, then close.
            let frame = bytes::Bytes::from(answer.reply);
            if let Err(e) = app.poster.post(&id, &frame).await {
                tracing::debug!(error = ?e, "the last reply to a closed session was not delivered");
            }
            if let Err(e) = app.poster.close(&id).await {
                tracing::warn!(error = ?e, "could not close an ended GameLink session");
            }
            response(200, None)
        }
    }
}

/// Whether a frame is a GameLink request (it has an `action`); a viewer's
/// socket sends only pings.
pub fn is_gamelink_frame(text: &str) -> bool {
    let text = text.trim_start();
    text.starts_with('{')
        && serde_json::from_str::<Value>(text)
            .map_or(text.contains("\"action\""), |v| v.get("action").is_some())
}

/// One Lambda invocation: [`handle`], with the route and status its log
/// line names.
pub async fn invocation<S: GameStore>(
    app: SharedApp<S>,
    event: ApiGatewayWebsocketProxyRequest,
) -> Handled<ApiGatewayProxyResponse> {
    let route = event.request_context.route_key.clone();
    let response = handle(&app, event).await;
    Handled {
        status: u16::try_from(response.status_code).unwrap_or(500),
        route: route.unwrap_or_else(|| "unknown".into()),
        response,
    }
}

fn response(status: i64, body: Option<String>) -> ApiGatewayProxyResponse {
    let mut r = ApiGatewayProxyResponse::default();
    r.status_code = status;
    r.body = body.map(Body::Text);
    r
}

fn error(e: ApiError) -> ApiGatewayProxyResponse {
    response(
        e.status().as_u16() as i64,
        Some(e.reason_body().to_string()),
    )
}
