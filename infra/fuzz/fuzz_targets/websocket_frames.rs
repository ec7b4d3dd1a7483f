//! WebSocket frames: the messenger's envelope (plain or compressed), frame
//! stamps, send targets, and the socket's answers to what a client sends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medkit::realtime::envelope;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = envelope::decode_message(text);
    let _ = envelope::event_of(text);
    let _ = envelope::frame_stamp(text);
    let _ = envelope::Target::parse(text);
    let _ = envelope::validate_event(text);
});
