//! What listeners receive (CONTRACT §6): the envelope string
//! `{"event": "<env>:<client_id>:<event>", "data": …}`, compressed to
//! base64(zlib(json)) when over 4 KB, inside a WebSocket frame naming its topic.
//!
//! The frame, as sent on every connection (one JSON text message):
//!
//! ```json
//! {"topic": "broadcast", "message": "{\"event\":\"sandbox:abc:score\",\"data\":{\"n\":1}}"}
//! ```
//!
//! `topic` is `broadcast` (a channel send), `global` (an extension-wide send)
//! or `whisper-<id>` (a send to one viewer); `message` is the envelope string,
//! or its base64(zlib) form, exactly what Twitch PubSub would hand a listener.

use std::io::Write;

use base64::Engine;
use flate2::Compression;
use flate2::write::ZlibEncoder;
use serde_json::{Value, json};

use crate::env::Env;
use crate::error::ApiError;
use crate::ids::{ClientId, ViewerId};

/// Largest message delivered, raw or compressed (bytes).
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// Longest event name accepted.
pub const MAX_EVENT_LEN: usize = 256;

/// Where a send goes within its scope (`target` in a request body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every listener of the scope.
    Broadcast,
    /// One viewer, by opaque id or (when shared) Twitch user id.
    Whisper(ViewerId),
}

impl Target {
    /// `broadcast`, `whisper-<id>`; `global` is accepted as `broadcast`
    /// (the scope already says whether a send is extension-wide).
    pub fn parse(raw: &str) -> Result<Target, ApiError> {
        match raw {
            "broadcast" | "global" => Ok(Target::Broadcast),
            _ => match raw.strip_prefix("whisper-") {
                Some(id) => ViewerId::parse(id)
                    .map(Target::Whisper)
                    .map_err(|e| ApiError::bad_request(format!("target whisper-<id>: {e}"))),
                None => Err(ApiError::bad_request(
                    "target must be \"broadcast\" or \"whisper-<user id>\"",
                )),
            },
        }
    }
}

/// The topic a frame names, which a listener subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    Broadcast,
    Global,
    Whisper(ViewerId),
}

impl Topic {
    pub fn as_string(&self) -> String {
        match self {
            Topic::Broadcast => "broadcast".into(),
            Topic::Global => "global".into(),
            Topic::Whisper(id) => format!("whisper-{id}"),
        }
    }
}

/// An event name as a sender gives it: non-empty, bounded, printable.
pub fn validate_event(event: &str) -> Result<(), ApiError> {
    if event.is_empty() {
        return Err(ApiError::bad_request("event is empty"));
    }
    if event.len() > MAX_EVENT_LEN {
        return Err(ApiError::bad_request(format!(
            "event is longer than {MAX_EVENT_LEN} bytes"
        )));
    }
    if event.chars().any(char::is_control) {
        return Err(ApiError::bad_request("event contains a control character"));
    }
    Ok(())
}

/// The envelope string for `event` and `data`: JSON when it fits 4 KB, else
/// base64(zlib(JSON)); 413 when even that is over 4 KB.
pub fn message(env: Env, client: &ClientId, event: &str, data: &Value) -> Result<String, ApiError> {
    let envelope = json!({
        "event": format!("{}:{client}:{event}", env.as_str()),
        "data": data,
    })
    .to_string();
    if envelope.len() <= MAX_MESSAGE_BYTES {
        return Ok(envelope);
    }
    let compressed = base64::engine::general_purpose::STANDARD.encode(zlib(envelope.as_bytes()));
    if compressed.len() <= MAX_MESSAGE_BYTES {
        Ok(compressed)
    } else {
        Err(ApiError::too_large(format!(
            "the message is {} bytes, {} compressed; the limit is {MAX_MESSAGE_BYTES}",
            envelope.len(),
            compressed.len()
        )))
    }
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut enc = ZlibEncoder::new(Vec::new(), Compression::best());
    enc.write_all(bytes).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

/// What identifies one send on the wire, on every copy and every retry of
/// its frame: `id`, random, for listeners to drop duplicates (a retried
/// fan-out job posts again to recipients it already reached); `seq`, its
/// order, from [`next_seq`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub id: String,
    pub seq: u64,
}

impl Stamp {
    pub fn new() -> Self {
        Stamp {
            id: hex(&crate::random::bytes::<8>()),
            seq: next_seq(),
        }
    }
}

impl Default for Stamp {
    fn default() -> Self {
        Self::new()
    }
}

/// Microseconds since the epoch, strictly increasing within a process: later
/// sends of one instance get larger values, and across instances the order
/// follows their (synchronised) clocks.
pub fn next_seq() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a frame's message is to a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A message: every one is shown (once).
    Message,
    /// A whole snapshot (`channel_state_update`, `vote_update:<id>`, …):
    /// only the latest matters, so a listener drops one older (lower `seq`)
    /// than the last it showed of the same event on the same topic.
    Snapshot,
}

/// The frame text for one message on one topic.
pub fn frame(topic: &Topic, message: &str, stamp: &Stamp, kind: Kind) -> String {
    let mut f = json!({
        "topic": topic.as_string(),
        "message": message,
        "id": stamp.id,
        "seq": stamp.seq,
    });
    if kind == Kind::Snapshot {
        f["snapshot"] = Value::Bool(true);
    }
    f.to_string()
}

/// The stamp a frame carries, if it is one of ours.
pub fn frame_stamp(frame: &str) -> Option<Stamp> {
    let v: Value = serde_json::from_str(frame).ok()?;
    Some(Stamp {
        id: v.get("id")?.as_str()?.to_string(),
        seq: v.get("seq")?.as_u64()?,
    })
}

/// What a listener does with a message: JSON, or base64(zlib(JSON)).
/// For tests and tools; clients do the same in JavaScript.
pub fn decode_message(message: &str) -> Option<Value> {
    if message.starts_with('{') {
        return serde_json::from_str(message).ok();
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(message)
        .ok()?;
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(&bytes[..]), &mut out).ok()?;
    serde_json::from_slice(&out).ok()
}

/// Parses a `{"event", "data"}` notification for logs and tests.
pub fn event_of(message: &str) -> Option<(String, Value)> {
    let v = decode_message(message)?;
    Some((
        v.get("event")?.as_str()?.to_string(),
        v.get("data")?.clone(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> ClientId {
        ClientId::parse("abc").unwrap()
    }

    #[test]
    fn small_messages_are_plain_json() {
        let m = message(Env::Sandbox, &client(), "score", &json!({"n": 1})).unwrap();
        let v: Value = serde_json::from_str(&m).unwrap();
        assert_eq!(v, json!({"event": "sandbox:abc:score", "data": {"n": 1}}));
        assert_eq!(decode_message(&m), Some(v));
    }

    #[test]
    fn large_messages_are_compressed_and_round_trip() {
        let data = json!({"text": "word ".repeat(2000)});
        let m = message(Env::Production, &client(), "big", &data).unwrap();
        assert!(!m.starts_with('{'), "compressed");
        assert!(m.len() <= MAX_MESSAGE_BYTES);
        let v = decode_message(&m).unwrap();
        assert_eq!(v["event"], "production:abc:big");
        assert_eq!(v["data"], data);
    }

    #[test]
    fn incompressible_messages_over_the_limit_are_refused() {
        // Random text does not compress below 4 KB.
        let noise = crate::random::token_id(8000);
        let e = message(Env::Sandbox, &client(), "x", &json!(noise)).unwrap_err();
        assert!(matches!(e, ApiError::TooLarge(_)), "{e}");
    }

    #[test]
    fn a_message_of_exactly_the_limit_stays_plain() {
        let overhead = message(Env::Sandbox, &client(), "e", &json!(""))
            .unwrap()
            .len();
        let data = json!("a".repeat(MAX_MESSAGE_BYTES - overhead));
        let m = message(Env::Sandbox, &client(), "e", &data).unwrap();
        assert_eq!(m.len(), MAX_MESSAGE_BYTES);
        assert!(m.starts_with('{'));
        let data = json!("a".repeat(MAX_MESSAGE_BYTES - overhead + 1));
        assert!(
            !message(Env::Sandbox, &client(), "e", &data)
                .unwrap()
                .starts_with('{')
        );
    }

    #[test]
    fn targets() {
        assert_eq!(Target::parse("broadcast").unwrap(), Target::Broadcast);
        assert_eq!(Target::parse("global").unwrap(), Target::Broadcast);
        assert_eq!(
            Target::parse("whisper-U123").unwrap(),
            Target::Whisper(ViewerId::parse("U123").unwrap())
        );
        for bad in ["", "whisper-", "whisper", "everyone", "whisper-a|b"] {
            assert!(Target::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn frames_name_the_topic_and_carry_the_message_string() {
        let stamp = Stamp::new();
        let f = frame(
            &Topic::Whisper(ViewerId::parse("U1").unwrap()),
            "{\"a\":1}",
            &stamp,
            Kind::Message,
        );
        let v: Value = serde_json::from_str(&f).unwrap();
        assert_eq!(
            v,
            json!({"topic": "whisper-U1", "message": "{\"a\":1}", "id": stamp.id, "seq": stamp.seq})
        );
        assert_eq!(frame_stamp(&f), Some(stamp.clone()));
        let snap: Value =
            serde_json::from_str(&frame(&Topic::Broadcast, "{}", &stamp, Kind::Snapshot)).unwrap();
        assert_eq!(snap["snapshot"], json!(true));
    }

    #[test]
    fn stamps_are_unique_and_ordered() {
        let stamps: Vec<Stamp> = (0..1000).map(|_| Stamp::new()).collect();
        assert!(stamps.windows(2).all(|w| w[0].seq < w[1].seq));
        let ids: std::collections::HashSet<&str> = stamps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids.len(), stamps.len());
        assert_eq!(stamps[0].id.len(), 16);
    }

    #[test]
    fn event_names() {
        assert!(validate_event("vote_update:poll").is_ok());
        assert!(validate_event("").is_err());
        assert!(validate_event(&"e".repeat(MAX_EVENT_LEN + 1)).is_err());
        assert!(validate_event("a\nb").is_err());
    }
}
