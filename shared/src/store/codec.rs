//! How a JSON document is stored: plain text when small, zlib when that saves
//! bytes (DynamoDB bills per KB and stops at 400 KB per item).

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use serde_json::Value;

use crate::error::StoreError;

/// Below this, compression rarely pays for itself.
const COMPRESS_ABOVE: usize = 1024;
/// Room left for keys and attribute names under DynamoDB's 400 KB item limit.
pub const MAX_STORED_BYTES: usize = 390 * 1024;
/// Cap on a decompressed document, so a corrupt or hostile item cannot balloon.
const MAX_INFLATED_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoded {
    Plain(String),
    Zlib(Vec<u8>),
}

impl Encoded {
    pub fn len(&self) -> usize {
        match self {
            Encoded::Plain(s) => s.len(),
            Encoded::Zlib(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub fn encode(value: &Value) -> Result<Encoded, StoreError> {
    let text = serde_json::to_string(value).map_err(|e| StoreError::Internal(e.to_string()))?;
    let encoded = if text.len() > COMPRESS_ABOVE {
        let mut z = ZlibEncoder::new(Vec::with_capacity(text.len() / 4), Compression::default());
        z.write_all(text.as_bytes())
            .and_then(|_| z.finish())
            .map(Encoded::Zlib)
            .map_err(|e| StoreError::Internal(e.to_string()))?
    } else {
        Encoded::Plain(text)
    };
    if encoded.len() > MAX_STORED_BYTES {
        return Err(StoreError::TooLarge(encoded.len()));
    }
    Ok(encoded)
}

pub fn decode_plain(text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Internal(format!("stored JSON: {e}")))
}

pub fn decode_zlib(bytes: &[u8]) -> Result<Value, StoreError> {
    let mut text = Vec::with_capacity(bytes.len() * 4);
    ZlibDecoder::new(bytes)
        .take(MAX_INFLATED_BYTES)
        .read_to_end(&mut text)
        .map_err(|e| StoreError::Internal(format!("stored zlib: {e}")))?;
    serde_json::from_slice(&text).map_err(|e| StoreError::Internal(format!("stored JSON: {e}")))
}

/// The stored JSON text, inflated if it was compressed.
pub fn decode_text(encoded: Encoded) -> Result<String, StoreError> {
    match encoded {
        Encoded::Plain(s) => Ok(s),
        Encoded::Zlib(b) => {
            let mut text = String::with_capacity(b.len() * 4);
            ZlibDecoder::new(b.as_slice())
                .take(MAX_INFLATED_BYTES)
                .read_to_string(&mut text)
                .map_err(|e| StoreError::Internal(format!("stored zlib: {e}")))?;
            Ok(text)
        }
    }
}

pub fn decode(encoded: &Encoded) -> Result<Value, StoreError> {
    match encoded {
        Encoded::Plain(s) => decode_plain(s),
        Encoded::Zlib(b) => decode_zlib(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Found by the `document_codec` fuzz target: a large number read from
    /// a client's text came back a different float once stored and read
    /// again (serde_json's fast float parser is not correctly rounded), so
    /// every read-modify-write could move it. Parsing is now exact.
    #[test]
    fn numbers_survive_a_store_round_trip() {
        for text in [
            "99999999777799999999977",
            "1.2345678901234567e-300",
            "0.1",
            "-7e22",
        ] {
            let v = decode_plain(text).unwrap();
            assert_eq!(decode(&encode(&v).unwrap()).unwrap(), v, "{text}");
        }
    }

    #[test]
    fn small_values_stay_plain_large_ones_compress() {
        let small = json!({"a": 1});
        assert!(matches!(encode(&small).unwrap(), Encoded::Plain(_)));
        let big = json!({"text": "medkit ".repeat(2000)});
        let enc = encode(&big).unwrap();
        assert!(matches!(enc, Encoded::Zlib(_)));
        assert!(
            enc.len() < 1000,
            "repetitive text compresses well: {}",
            enc.len()
        );
        assert_eq!(decode(&enc).unwrap(), big);
    }

    #[test]
    fn incompressible_values_over_the_item_limit_are_refused() {
        // Pseudo-random printable text (~6.5 bits a byte) stays above the limit.
        let mut x: u64 = 0x9E3779B97F4A7C15;
        let noise: String = (0..499 * 1024)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (b'(' + (x % 87) as u8) as char // '(' ..= '~'
            })
            .map(|c| if c == '\\' { 'a' } else { c })
            .collect();
        assert!(matches!(
            encode(&json!({ "n": noise })),
            Err(StoreError::TooLarge(_))
        ));
    }
}
