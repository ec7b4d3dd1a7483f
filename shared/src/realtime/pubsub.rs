//! Twitch Extension PubSub's side of a send (issue #18): the message strings
//! Helix's Send Extension PubSub Message carries, in the three forms the
//! official client's `parseMessage` reads, and the request that carries
//! them. Pure: the relay adapter signs and posts.
//!
//! `parseMessage` (in `@muxy/extensions-js`) reads a string starting with `{`
//! or `[` as JSON; `<index,count>` followed by a fragment as one part of
//! base64(zlib(JSON)), joined when all `count` have arrived (keyed by
//! extension and topic, so a topic's fragmented messages must not
//! interleave); anything else as base64(zlib(JSON)).

use std::io::Write;

use base64::Engine;
use flate2::Compression;
use flate2::write::ZlibEncoder;
use serde_json::{Value, json};

use crate::ids::ChannelId;
use crate::realtime::envelope::Topic;

/// Twitch's limit on one message string.
pub const MAX_PUBSUB_BYTES: usize = 5 * 1024;
/// Twitch's limit per extension and channel (`global`: per extension).
pub const MESSAGES_PER_MINUTE: u32 = 100;
/// A relayed send may take at most this many messages: a larger one would
/// spend a fifth of the channel's minute on one send.
pub const MAX_FRAGMENTS: usize = 20;

/// The message strings for one MEDKit envelope (its JSON text, or the
/// base64(zlib) form the WebSocket path already made): the JSON itself when
/// it fits [`MAX_PUBSUB_BYTES`], else base64(zlib(JSON)) when that fits, else
/// `<i,n>` fragments of it, each within the limit. `None` when the envelope
/// is not JSON or would need more than [`MAX_FRAGMENTS`] messages.
pub fn messages(envelope: &str) -> Option<Vec<String>> {
    let json = as_json_text(envelope)?;
    if json.len() <= MAX_PUBSUB_BYTES {
        return Some(vec![json]);
    }
    let compressed = base64::engine::general_purpose::STANDARD.encode(zlib(json.as_bytes()));
    if compressed.len() <= MAX_PUBSUB_BYTES {
        return Some(vec![compressed]);
    }
    fragments(&compressed)
}

/// The envelope's JSON text, whichever form it came in.
fn as_json_text(envelope: &str) -> Option<String> {
    let value: Value = if envelope.starts_with('{') {
        serde_json::from_str(envelope).ok()?
    } else {
        crate::realtime::envelope::decode_message(envelope)?
    };
    value.is_object().then(|| value.to_string())
}

/// `<i,n>` + part i of `b64`. The header's width depends on `n`, so the part
/// size is found for the largest header of that `n`. base64 is ASCII, so any
/// byte split is a character split.
fn fragments(b64: &str) -> Option<Vec<String>> {
    for n in 2..=MAX_FRAGMENTS {
        let header = format!("<{},{n}>", n - 1).len();
        let room = MAX_PUBSUB_BYTES - header;
        if b64.len().div_ceil(room) <= n {
            let size = b64.len().div_ceil(n);
            let parts: Vec<String> = b64
                .as_bytes()
                .chunks(size)
                .enumerate()
                .map(|(i, part)| {
                    format!(
                        "<{i},{}>{}",
                        b64.len().div_ceil(size),
                        std::str::from_utf8(part).expect("base64 is ASCII")
                    )
                })
                .collect();
            return Some(parts);
        }
    }
    None
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut enc = ZlibEncoder::new(Vec::new(), Compression::best());
    enc.write_all(bytes).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

/// Where on Twitch a medkit topic goes: Helix's `target` and whether the
/// message is global. Twitch whispers to an opaque id; a whisper addressed
/// by Twitch user id (digits) goes to that viewer's opaque id when they
/// share their identity, `U<user id>`.
pub fn target_of(topic: &Topic) -> (String, bool) {
    match topic {
        Topic::Whisper(v) if v.as_str().bytes().all(|b| b.is_ascii_digit()) => {
            (format!("whisper-U{v}"), false)
        }
        t => (t.as_string(), matches!(t, Topic::Global)),
    }
}

/// The body of `POST /helix/extensions/pubsub` for one message string.
pub fn helix_body(channel: Option<&ChannelId>, target: &str, global: bool, message: &str) -> Value {
    let mut body = json!({
        "target": [target],
        "is_global_broadcast": global,
        "message": message,
    });
    if let (Some(ch), false) = (channel, global) {
        body["broadcaster_id"] = json!(ch.as_str());
    }
    body
}

/// The claims of the JWT Helix wants with it: signed by the extension's
/// secret, role `external`, the extension owner's user id, the channel
/// (`all` for a global message) and send permission for the target only.
pub fn helix_claims(
    owner_user_id: &str,
    channel: Option<&ChannelId>,
    target: &str,
    now: i64,
) -> Value {
    json!({
        "exp": now + 60,
        "user_id": owner_user_id,
        "role": "external",
        "channel_id": channel.map_or("all", |c| c.as_str()),
        "pubsub_perms": {"send": [target]},
    })
}

/// What `parseMessage` does with the strings of one send, in order: the
/// envelope when the last has arrived. For tests and tools.
pub fn reassemble(messages: &[String]) -> Option<Value> {
    let first = messages.first()?;
    if !first.starts_with('<') {
        return crate::realtime::envelope::decode_message(first);
    }
    let mut parts: Vec<String> = Vec::new();
    for m in messages {
        let close = m.find('>')?;
        let (i, n) = m[1..close].split_once(',')?;
        let (i, n): (usize, usize) = (i.parse().ok()?, n.parse().ok()?);
        if parts.is_empty() {
            parts = vec![String::new(); n];
        }
        *parts.get_mut(i)? = m[close + 1..].to_string();
    }
    if parts.iter().any(String::is_empty) {
        return None;
    }
    crate::realtime::envelope::decode_message(&parts.concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(data_bytes: usize, random: bool) -> String {
        let text = if random {
            crate::testing::incompressible(data_bytes)
        } else {
            "a".repeat(data_bytes)
        };
        json!({"event": "production:abc:big", "data": {"text": text}}).to_string()
    }

    #[test]
    fn a_small_envelope_goes_as_json() {
        let e = envelope(100, false);
        let m = messages(&e).unwrap();
        assert_eq!(m, vec![e.clone()]);
        assert_eq!(
            reassemble(&m).unwrap(),
            serde_json::from_str::<Value>(&e).unwrap()
        );
    }

    #[test]
    fn a_large_compressible_envelope_goes_compressed_in_one_message() {
        let e = envelope(12 * 1024, false);
        let m = messages(&e).unwrap();
        assert_eq!(m.len(), 1);
        assert!(!m[0].starts_with('{') && !m[0].starts_with('<'));
        assert!(m[0].len() <= MAX_PUBSUB_BYTES);
        assert_eq!(
            reassemble(&m).unwrap()["data"]["text"]
                .as_str()
                .unwrap()
                .len(),
            12 * 1024
        );
    }

    #[test]
    fn an_incompressible_envelope_is_split_into_fragments_within_the_limit() {
        let e = envelope(12 * 1024, true);
        let m = messages(&e).unwrap();
        assert!(m.len() >= 2, "{} messages", m.len());
        for (i, part) in m.iter().enumerate() {
            assert!(
                part.len() <= MAX_PUBSUB_BYTES,
                "part {i}: {} bytes",
                part.len()
            );
            assert!(
                part.starts_with(&format!("<{i},{}>", m.len())),
                "{}",
                &part[..10]
            );
        }
        assert_eq!(
            reassemble(&m).unwrap(),
            serde_json::from_str::<Value>(&e).unwrap()
        );
        // Parts arriving out of order still join (the client indexes them).
        let mut reversed = m.clone();
        reversed.reverse();
        let (last, rest) = reversed.split_first().unwrap();
        let mut shuffled = rest.to_vec();
        shuffled.push(last.clone());
        assert_eq!(
            reassemble(&shuffled).unwrap(),
            serde_json::from_str::<Value>(&e).unwrap()
        );
    }

    #[test]
    fn the_websocket_paths_compressed_form_is_accepted_too() {
        let e = envelope(6 * 1024, false);
        let b64 = base64::engine::general_purpose::STANDARD.encode(zlib(e.as_bytes()));
        assert_eq!(
            reassemble(&messages(&b64).unwrap()).unwrap(),
            serde_json::from_str::<Value>(&e).unwrap()
        );
    }

    #[test]
    fn what_cannot_be_relayed_is_refused() {
        assert_eq!(messages("not json"), None);
        assert_eq!(messages("[1,2]"), None);
        // Over MAX_FRAGMENTS messages even compressed (random letters
        // compress to about 0.8 of their size in base64), and just within.
        assert_eq!(
            messages(&envelope(MAX_PUBSUB_BYTES * MAX_FRAGMENTS * 2, true)),
            None
        );
        let within = messages(&envelope(MAX_PUBSUB_BYTES * MAX_FRAGMENTS / 2, true)).unwrap();
        assert!(within.len() > 2 && within.len() <= MAX_FRAGMENTS);
    }

    #[test]
    fn topics_map_to_helix_targets() {
        use crate::ids::ViewerId;
        assert_eq!(target_of(&Topic::Broadcast), ("broadcast".into(), false));
        assert_eq!(target_of(&Topic::Global), ("global".into(), true));
        let w = Topic::Whisper(ViewerId::parse("U123").unwrap());
        assert_eq!(target_of(&w), ("whisper-U123".into(), false));
        let by_user_id = Topic::Whisper(ViewerId::parse("123").unwrap());
        assert_eq!(target_of(&by_user_id), ("whisper-U123".into(), false));
    }

    #[test]
    fn the_helix_request_names_channel_and_target_only() {
        let ch = ChannelId::parse("1001").unwrap();
        let body = helix_body(Some(&ch), "broadcast", false, "{}");
        assert_eq!(
            body,
            json!({"target": ["broadcast"], "broadcaster_id": "1001",
                               "is_global_broadcast": false, "message": "{}"})
        );
        let global = helix_body(None, "global", true, "{}");
        assert!(global.get("broadcaster_id").is_none());
        let claims = helix_claims("777", Some(&ch), "whisper-U5", 1000);
        assert_eq!(claims["role"], "external");
        assert_eq!(claims["channel_id"], "1001");
        assert_eq!(claims["pubsub_perms"]["send"], json!(["whisper-U5"]));
        assert_eq!(claims["exp"], 1060);
        assert_eq!(helix_claims("777", None, "global", 0)["channel_id"], "all");
    }
}
