//! Extractors: the verified [`Caller`], the body as JSON whatever its
//! Content-Type, and query parameters parsed leniently.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header, request::Parts};
use serde_json::Value;

use crate::app::App;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::store::AuthStore;

/// The caller an `Authorization` header (`<client_id> <jwt>`) proves. Needs
/// only the auth port (PIN-issued tokens are looked up there).
impl<S: AuthStore> FromRequestParts<Arc<App<S>>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App<S>>) -> Result<Self, ApiError> {
        let header = match parts.headers.get(header::AUTHORIZATION) {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| ApiError::unauthorized("Authorization header is not text"))?,
            ),
        };
        app.authenticate(header).await
    }
}

/// The request body parsed as JSON, whatever the Content-Type (the official
/// client labels JSON bodies as form data).
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large("the request body is larger than this endpoint accepts")
            } else {
                ApiError::bad_request("could not read the request body")
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

pub fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "request body is empty; expected JSON",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "request body is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

/// Query parameters, parsed leniently: the official client does not encode ids.
pub struct QueryMap(pub HashMap<String, String>);

impl QueryMap {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A required parameter, 400 when missing or empty.
    pub fn require(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::bad_request(format!("query parameter {name} is required")))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(QueryMap(parse_query(parts.uri.query().unwrap_or(""))))
    }
}

pub fn parse_query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Decodes `%XX` escapes; anything malformed is kept as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_parsed_leniently() {
        let q = parse_query("id=my poll&user_ids=a,b,c&x=%41%zz&flag");
        assert_eq!(q["id"], "my poll");
        assert_eq!(q["user_ids"], "a,b,c");
        assert_eq!(q["x"], "A%zz");
        assert_eq!(q["flag"], "");
        assert_eq!(parse_query("start=undefined")["start"], "undefined");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
    }

    #[test]
    fn json_body_errors_are_clear() {
        assert!(parse_json(b"").is_err());
        assert!(parse_json(b"  ").is_err());
        let err = parse_json(b"{nope").unwrap_err();
        assert!(matches!(err, ApiError::BadRequest(ref r) if r.contains("not valid JSON")));
        assert_eq!(parse_json(b"[1]").unwrap(), serde_json::json!([1]));
    }
}
