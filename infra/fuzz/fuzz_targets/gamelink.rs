//! The GameLink envelope and every body it carries: a frame is a request
//! or a refusal naming what could be read, never a panic; each target's
//! body parser answers too (matches, and a purchase submission's body), and
//! a timer's SQS message body reads back as itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medkit::delivery::timers::Due;
use medkit::gamelink::{authentication, datastream, envelope, matches, poll, state};
use medkit::purchases::Submission;
use medkit::realtime::subscription::Subscription;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Subscription::decode(text);
    // A timer's message body (SQS) reads back as itself.
    if let Ok(due) = Due::decode(text) {
        assert_eq!(Due::decode(&due.encode()).as_ref(), Ok(&due));
    }
    let req = match envelope::parse_request(text) {
        Ok(r) => r,
        Err(refusal) => {
            // The refusal is itself a frame the library can read.
            let reply = envelope::error_reply(&refusal.meta, &refusal.error, 0);
            assert!(serde_json::from_str::<serde_json::Value>(&reply).is_ok());
            return;
        }
    };
    let d = &req.data;
    let _ = authentication::parse(d);
    let _ = state::target_of(&req.action, d);
    let _ = state::config_target_of(&req.action, d);
    let _ = datastream::events_of(d);
    let _ = poll::poll_id_of(d, "poll_id");
    if let Ok(mut p) = poll::parse_create(d, 1_800_000_000, "run".into()) {
        assert!(!p.options.is_empty() && p.options.len() <= poll::MAX_OPTIONS);
        let _ = p.reconfigure(
            d.get("config").unwrap_or(&serde_json::Value::Null),
            1_800_000_100,
        );
    }
    let _ = matches::match_id_of(d, "id");
    if let Ok(channels) = matches::channels_of(d) {
        let mut m = matches::Match::new(&medkit::ids::AggregateId::parse("m").unwrap(), 0);
        if m.add(&channels).is_ok() {
            assert!(m.channels.len() <= matches::MAX_MATCH_CHANNELS);
            assert!(m.channels.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
        }
    }
    // A purchase submission (REST) and its unsigned facts (the sandbox's).
    if let Ok(sub) = Submission::parse(d) {
        let _ = sub.unsigned_facts(Some("555"));
    }
    let reply = envelope::reply(&req.meta(), d, 0);
    assert!(serde_json::from_str::<serde_json::Value>(&reply).is_ok());
});
