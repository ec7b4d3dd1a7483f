//! Rules for the JSON documents (state, config, JSON store): shapes, limits,
//! and PATCH semantics (RFC 6902 for arrays, RFC 7386 for objects).

use serde_json::Value;

use crate::error::ApiError;

/// A store's JSON, serialized compactly (Muxy's channel-state limit).
pub const MAX_DOC_BYTES: usize = 500 * 1024;
/// A JSON-store value.
pub const MAX_JSON_STORE_BYTES: usize = 2 * 1024;
/// Entries in a multi-get.
pub const MAX_IDS: usize = 1000;
/// Entries in an admin map PATCH, which is all or nothing: on DynamoDB, one
/// TransactWriteItems (the API's limit is 100 items).
pub const MAX_ATOMIC_IDS: usize = 100;
/// Stored bytes (after compression) one all-or-nothing write may carry
/// (TransactWriteItems takes 4 MB in all).
pub const MAX_ATOMIC_BYTES: usize = 4_000_000;
/// Bytes one JSON Patch may copy in all (its `copy` operations' sources,
/// measured before each copy is made). A `copy` from the root doubles the
/// document, so without a bound k copies cost 2^k bytes; with it, a patch
/// grows a document by at most this plus its own body.
pub const MAX_PATCH_COPY_BYTES: usize = MAX_DOC_BYTES;

/// 400 unless `v` is a JSON object (every store's root is one).
pub fn require_object(v: &Value, what: &str) -> Result<(), ApiError> {
    if v.is_object() {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{what} must be a JSON object"
        )))
    }
}

/// 413 when `v` serializes to more than `limit` bytes.
pub fn check_size(v: &Value, limit: usize, what: &str) -> Result<(), ApiError> {
    let len = json_len(v);
    if len > limit {
        return Err(ApiError::too_large(format!(
            "{what} is {len} bytes; the limit is {limit}"
        )));
    }
    Ok(())
}

/// A validated PATCH body.
#[derive(Debug, Clone)]
pub enum Patch {
    Json(json_patch::Patch),
    Merge(Value),
}

impl Patch {
    pub fn parse(body: Value) -> Result<Self, ApiError> {
        match body {
            Value::Array(_) => serde_json::from_value(body)
                .map(Patch::Json)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON Patch: {e}"))),
            Value::Object(_) => Ok(Patch::Merge(body)),
            _ => Err(ApiError::bad_request(
                "PATCH body must be a JSON Patch array or a merge-patch object",
            )),
        }
    }

    /// Applies to `current` (an empty object when absent); the result must stay
    /// an object within `limit` bytes.
    pub fn apply(
        &self,
        current: Option<Value>,
        limit: usize,
        what: &str,
    ) -> Result<Value, ApiError> {
        let mut doc = current.unwrap_or_else(|| Value::Object(Default::default()));
        match self {
            Patch::Json(p) => apply_operations(&mut doc, p, what)?,
            // A merge patch adds at most its own size (the request body's).
            Patch::Merge(m) => json_patch::merge(&mut doc, m),
        }
        require_object(&doc, what)?;
        check_size(&doc, limit, what)?;
        Ok(doc)
    }
}

/// RFC 6902 operations one at a time on a working copy (a failure discards
/// it, so nothing is half applied), with the bytes the patch copies counted
/// before each copy is made: over [`MAX_PATCH_COPY_BYTES`] in all is a 413.
fn apply_operations(
    doc: &mut Value,
    patch: &json_patch::Patch,
    what: &str,
) -> Result<(), ApiError> {
    let mut copied = 0usize;
    for (i, op) in patch.0.iter().enumerate() {
        if let json_patch::PatchOperation::Copy(c) = op {
            let source = doc.pointer(c.from.as_str()).map(json_len).unwrap_or(0);
            copied = copied.saturating_add(source);
            if copied > MAX_PATCH_COPY_BYTES {
                return Err(ApiError::too_large(format!(
                    "this patch copies more than {MAX_PATCH_COPY_BYTES} bytes of the {what}"
                )));
            }
        }
        json_patch::patch_unsafe(doc, std::slice::from_ref(op)).map_err(|e| {
            ApiError::bad_request(format!(
                "JSON Patch failed: operation '/{i}' failed at path '{}': {}",
                e.path, e.kind
            ))
        })?;
    }
    Ok(())
}

/// The length of `v` as compact JSON, without building the text.
fn json_len(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Count(0);
    let _ = serde_json::to_writer(&mut n, v);
    n.0
}

/// Validates a replacement document (POST).
pub fn replacement(body: Value, limit: usize, what: &str) -> Result<Value, ApiError> {
    require_object(&body, what)?;
    check_size(&body, limit, what)?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let p = Patch::parse(json!({"a": {"b": null, "c": 2}, "list": [9]})).unwrap();
        let out = p
            .apply(
                Some(json!({"a": {"b": 1}, "list": [1, 2], "keep": true})),
                MAX_DOC_BYTES,
                "state",
            )
            .unwrap();
        assert_eq!(out, json!({"a": {"c": 2}, "list": [9], "keep": true}));
    }

    #[test]
    fn json_patch_follows_rfc_6902() {
        let p = Patch::parse(json!([
            {"op": "add", "path": "/x", "value": 1},
            {"op": "test", "path": "/x", "value": 1},
            {"op": "replace", "path": "/y", "value": "new"}
        ]))
        .unwrap();
        let out = p
            .apply(Some(json!({"y": "old"})), MAX_DOC_BYTES, "state")
            .unwrap();
        assert_eq!(out, json!({"x": 1, "y": "new"}));
    }

    #[test]
    fn bad_patches_are_400() {
        assert!(Patch::parse(json!([{"op": "explode", "path": "/x"}])).is_err());
        assert!(Patch::parse(json!("text")).is_err());
        let failing_test = Patch::parse(json!([{"op": "test", "path": "/x", "value": 2}])).unwrap();
        assert!(matches!(
            failing_test.apply(Some(json!({"x": 1})), MAX_DOC_BYTES, "state"),
            Err(ApiError::BadRequest(_))
        ));
        let bad_path = Patch::parse(json!([{"op": "remove", "path": "/missing/deep"}])).unwrap();
        assert!(bad_path.apply(None, MAX_DOC_BYTES, "state").is_err());
        // Replacing the root with a non-object is refused.
        let root = Patch::parse(json!([{"op": "replace", "path": "", "value": [1]}])).unwrap();
        assert!(root.apply(None, MAX_DOC_BYTES, "state").is_err());
    }

    #[test]
    fn limits_are_413() {
        let big = json!({"s": "x".repeat(MAX_DOC_BYTES)});
        assert!(matches!(
            replacement(big, MAX_DOC_BYTES, "state"),
            Err(ApiError::TooLarge(_))
        ));
        assert!(replacement(json!([1]), MAX_DOC_BYTES, "state").is_err());
        assert!(replacement(json!({"ok": 1}), MAX_DOC_BYTES, "state").is_ok());
    }
}
