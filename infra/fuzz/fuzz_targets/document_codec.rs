//! The document codec: a stored item's bytes (zlib) or text, however
//! corrupt, decode to a document or an error, within the inflation cap; and
//! every document round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medkit::store::codec;

fuzz_target!(|data: &[u8]| {
    let _ = codec::decode_zlib(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(v) = codec::decode_plain(text)
            && let Ok(encoded) = codec::encode(&v)
        {
            assert_eq!(
                codec::decode(&encoded).expect("what encode made decodes"),
                v
            );
        }
    }
});
