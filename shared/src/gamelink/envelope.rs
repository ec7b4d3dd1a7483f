//! GameLink frames. A game sends `{"action", "params": {"request_id",
//! "target"?}, "data"?}` (the library omits `target` when empty and `data`
//! for empty bodies; `request_id` is a 16-bit number). medkit answers each
//! request once, `{"meta": {"request_id", "action", "target", "timestamp"},
//! "data"}`, or on failure `{"meta": …, "errors": [{"number", "title",
//! "detail"}]}`; updates it pushes carry [`UPDATE_REQUEST_ID`], the id the
//! library routes to its persistent callbacks, and the action `update`.

use serde_json::{Map, Value, json};

use crate::error::ApiError;

/// The request id of pushed updates and of replies to frames whose own id
/// could not be read: the library's `ANY_REQUEST_ID` (`UINT16_MAX`).
pub const UPDATE_REQUEST_ID: u16 = u16::MAX;
/// Largest frame accepted: API Gateway's WebSocket frame limit.
pub const MAX_FRAME_BYTES: usize = 128 * 1024;
/// Longest action or target name (the library's longest is ~20).
const MAX_NAME: usize = 64;

/// A request as a game sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub action: String,
    pub request_id: u16,
    /// Empty when the frame has none.
    pub target: String,
    /// `Null` when the frame has none.
    pub data: Value,
}

/// The `meta` of a reply: which request it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub request_id: u16,
    pub action: String,
    pub target: String,
}

impl Meta {
    /// The meta of a pushed update of `target`.
    pub fn update(target: &str) -> Meta {
        Meta {
            request_id: UPDATE_REQUEST_ID,
            action: "update".into(),
            target: target.into(),
        }
    }

    fn to_json(&self, now_ms: i64) -> Value {
        json!({
            "request_id": self.request_id,
            "action": self.action,
            "target": self.target,
            "timestamp": now_ms,
        })
    }
}

impl Request {
    /// The meta of this request's reply.
    pub fn meta(&self) -> Meta {
        Meta {
            request_id: self.request_id,
            action: self.action.clone(),
            target: self.target.clone(),
        }
    }
}

/// One entry of a reply's `errors`: `number` is an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GamelinkError {
    pub number: u16,
    pub title: &'static str,
    pub detail: String,
}

impl GamelinkError {
    fn new(number: u16, title: &'static str, detail: impl Into<String>) -> Self {
        GamelinkError {
            number,
            title,
            detail: detail.into(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(400, "Bad Request", detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(401, "Unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, "Not Found", detail)
    }

    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(413, "Payload Too Large", detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(409, "Conflict", detail)
    }

    pub fn not_implemented(detail: impl Into<String>) -> Self {
        Self::new(501, "Not Implemented", detail)
    }
}

/// The REST errors as GameLink errors: the same status and reason, and no
/// internals for the ones whose cause is only logged.
impl From<ApiError> for GamelinkError {
    fn from(e: ApiError) -> Self {
        let detail = e.to_string();
        match e {
            ApiError::BadRequest(_) => Self::new(400, "Bad Request", detail),
            ApiError::Unauthorized(_) => Self::new(401, "Unauthorized", detail),
            ApiError::Forbidden(_) => Self::new(403, "Forbidden", detail),
            ApiError::NotFound(_) => Self::new(404, "Not Found", detail),
            ApiError::Conflict(_) => Self::new(409, "Conflict", detail),
            ApiError::TooLarge(_) => Self::new(413, "Payload Too Large", detail),
            ApiError::RateLimited(_) => Self::new(429, "Too Many Requests", detail),
            ApiError::MethodNotAllowed => Self::new(405, "Method Not Allowed", detail),
            ApiError::RequestTimeout => Self::new(408, "Request Timeout", detail),
            ApiError::Unavailable => Self::new(503, "Service Unavailable", detail),
            ApiError::Internal => Self::new(500, "Internal Server Error", detail),
        }
    }
}

/// Store failures as the REST API reports them (503 retryable, 500 with
/// the cause only logged).
impl From<crate::error::StoreError> for GamelinkError {
    fn from(e: crate::error::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

/// A frame that is not a request: the error, and the meta its reply
/// carries (as much of the request as could be read).
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub meta: Meta,
    pub error: GamelinkError,
}

/// Reads a frame. Whatever is wrong with it, the refusal says what and which
/// request it was, as far as that could be read, so the reply reaches the
/// game's callback for it.
pub fn parse_request(frame: &str) -> Result<Request, Refusal> {
    let mut meta = Meta::update("");
    meta.action = String::new();
    let refuse = |meta: &Meta, error| Refusal {
        meta: meta.clone(),
        error,
    };
    if frame.len() > MAX_FRAME_BYTES {
        return Err(refuse(
            &meta,
            GamelinkError::too_large(format!("a frame is at most {MAX_FRAME_BYTES} bytes")),
        ));
    }
    let Ok(Value::Object(mut frame)) = serde_json::from_str::<Value>(frame) else {
        return Err(refuse(
            &meta,
            GamelinkError::bad_request("a frame is a JSON object"),
        ));
    };
    let params = match frame.remove("params") {
        Some(Value::Object(p)) => p,
        None => Map::new(),
        Some(_) => {
            return Err(refuse(
                &meta,
                GamelinkError::bad_request("params is an object"),
            ));
        }
    };
    // The id first: every later refusal can then name the request.
    let request_id = match params.get("request_id") {
        Some(v) => v.as_u64().and_then(|n| u16::try_from(n).ok()),
        None => None,
    };
    meta.action = name(frame.get("action")).unwrap_or_default();
    meta.target = name(params.get("target")).unwrap_or_default();
    let Some(request_id) = request_id else {
        return Err(refuse(
            &meta,
            GamelinkError::bad_request("params.request_id is required: a number 0..65535"),
        ));
    };
    meta.request_id = request_id;
    let Some(action) = name(frame.get("action")).filter(|a| !a.is_empty()) else {
        return Err(refuse(
            &meta,
            GamelinkError::bad_request(format!(
                "action is required: a string of at most {MAX_NAME} characters"
            )),
        ));
    };
    let target = match params.get("target") {
        None | Some(Value::Null) => String::new(),
        Some(v) => name(Some(v)).ok_or_else(|| {
            refuse(
                &meta,
                GamelinkError::bad_request(format!(
                    "params.target is a string of at most {MAX_NAME} characters"
                )),
            )
        })?,
    };
    Ok(Request {
        action,
        request_id,
        target,
        data: frame.remove("data").unwrap_or(Value::Null),
    })
}

/// A short string field, or None.
fn name(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .filter(|s| s.len() <= MAX_NAME)
        .map(str::to_string)
}

/// The reply to a request that succeeded (or an update, with
/// [`Meta::update`]).
pub fn reply(meta: &Meta, data: &Value, now_ms: i64) -> String {
    json!({ "meta": meta.to_json(now_ms), "data": data }).to_string()
}

/// The reply to a request that failed.
pub fn error_reply(meta: &Meta, error: &GamelinkError, now_ms: i64) -> String {
    json!({
        "meta": meta.to_json(now_ms),
        "errors": [{
            "number": error.number,
            "title": error.title,
            "detail": error.detail,
        }],
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(frame: &str) -> Refusal {
        parse_request(frame).unwrap_err()
    }

    #[test]
    fn frames_as_the_library_sends_them() {
        // nlohmann::json dumps keys in order; `target` is left out when empty.
        let auth = r#"{"action":"authenticate","data":{"client_id":"abc","pin":"XY12Z3"},"params":{"request_id":1}}"#;
        let req = parse_request(auth).unwrap();
        assert_eq!(
            (req.action.as_str(), req.request_id, req.target.as_str()),
            ("authenticate", 1, "")
        );
        assert_eq!(req.data["pin"], "XY12Z3");
        let get = r#"{"action":"get","data":{"state_id":"channel"},"params":{"request_id":65535,"target":"state"}}"#;
        let req = parse_request(get).unwrap();
        assert_eq!((req.request_id, req.target.as_str()), (65535, "state"));
        // An empty body: no `data` at all.
        let sub = r#"{"action":"subscribe","params":{"request_id":7,"target":"authentication"}}"#;
        assert_eq!(parse_request(sub).unwrap().data, Value::Null);
    }

    #[test]
    fn bad_frames_are_refused_naming_the_request() {
        let r = refusal("not json");
        assert_eq!(
            (r.error.number, r.meta.request_id),
            (400, UPDATE_REQUEST_ID)
        );
        assert_eq!(refusal("[1,2]").error.number, 400);
        // No request id: the reply goes to the library's persistent callbacks.
        let r = refusal(r#"{"action":"get","params":{"target":"state"}}"#);
        assert_eq!(
            (
                r.meta.request_id,
                r.meta.action.as_str(),
                r.meta.target.as_str()
            ),
            (UPDATE_REQUEST_ID, "get", "state")
        );
        assert!(r.error.detail.contains("request_id"));
        for bad_id in ["-1", "65536", "1.5", "\"3\""] {
            let f = format!(r#"{{"action":"get","params":{{"request_id":{bad_id}}}}}"#);
            assert_eq!(refusal(&f).error.number, 400, "{bad_id}");
        }
        // With an id, the refusal carries it.
        let r = refusal(r#"{"params":{"request_id":9}}"#);
        assert_eq!((r.meta.request_id, r.error.number), (9, 400));
        assert!(r.error.detail.contains("action"));
        let r = refusal(r#"{"action":"get","params":{"request_id":9,"target":5}}"#);
        assert!(r.error.detail.contains("target"));
        let long = format!(
            r#"{{"action":"{}","params":{{"request_id":9}}}}"#,
            "a".repeat(65)
        );
        assert_eq!(refusal(&long).error.number, 400);
        let huge = format!(
            r#"{{"action":"set","params":{{"request_id":2}},"data":"{}"}}"#,
            "x".repeat(MAX_FRAME_BYTES)
        );
        assert_eq!(refusal(&huge).error.number, 413);
        assert_eq!(refusal(r#"{"action":"get","params":[]}"#).error.number, 400);
    }

    #[test]
    fn replies_and_updates_have_the_librarys_shape() {
        let req = parse_request(r#"{"action":"get","data":{"state_id":"channel"},"params":{"request_id":4,"target":"state"}}"#).unwrap();
        let ok: Value =
            serde_json::from_str(&reply(&req.meta(), &json!({"ok": true}), 1700)).unwrap();
        assert_eq!(
            ok,
            json!({"meta": {"request_id": 4, "action": "get", "target": "state", "timestamp": 1700}, "data": {"ok": true}})
        );
        let err: Value = serde_json::from_str(&error_reply(
            &req.meta(),
            &GamelinkError::from(ApiError::forbidden("not yours")),
            1700,
        ))
        .unwrap();
        assert_eq!(
            err["errors"],
            json!([{"number": 403, "title": "Forbidden", "detail": "not yours"}])
        );
        assert!(err.get("data").is_none());
        let update: Value =
            serde_json::from_str(&reply(&Meta::update("channel"), &json!({"state": {}}), 5))
                .unwrap();
        assert_eq!(update["meta"]["request_id"], 65535);
        assert_eq!(update["meta"]["action"], "update");
        // Internal causes never reach a game.
        let e = GamelinkError::from(ApiError::Internal);
        assert_eq!((e.number, e.detail.as_str()), (500, "internal error"));
    }
}
