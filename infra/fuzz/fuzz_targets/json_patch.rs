//! JSON merge patches and JSON Patch under the size rules: a document and a
//! patch (split at the first 0 byte); applying either refuses or yields an
//! object within the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medkit::documents::{self, Patch};
use serde_json::Value;

/// Small, so the size rule is exercised.
const LIMIT: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|b| *b == 0) else {
        return;
    };
    let (doc, patch) = (&data[..split], &data[split + 1..]);
    let Ok(patch) = serde_json::from_slice::<Value>(patch) else {
        return;
    };
    let current = serde_json::from_slice::<Value>(doc).ok();
    let Ok(patch) = Patch::parse(patch) else {
        return;
    };
    if let Ok(new) = patch.apply(current, LIMIT, "fuzzed document") {
        assert!(new.is_object(), "a patch made a non-object: {new}");
        assert!(documents::check_size(&new, LIMIT, "fuzzed document").is_ok());
    }
    // A replacement follows the same rules.
    if let Ok(v) = serde_json::from_slice::<Value>(doc)
        && let Ok(new) = documents::replacement(v, LIMIT, "fuzzed document")
    {
        assert!(new.is_object());
    }
});
