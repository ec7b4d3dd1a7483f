//! The codes upload body (`PUT codes`, with and without `?append=true`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use medkit::codes::Upload;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some((&flag, body)) = data.split_first() else {
        return;
    };
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let _ = Upload::parse(&v, flag & 1 == 1);
    let _ = medkit::codes::redeem_slot(&v);
    if let Some(s) = v.as_str() {
        let _ = medkit::codes::check_code(s);
        let _ = medkit::codes::part_id(s);
    }
});
