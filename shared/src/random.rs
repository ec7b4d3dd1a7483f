//! Random identifiers from the OS generator.

const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";

/// `len` random characters from an unambiguous alphanumeric alphabet.
pub fn token_id(len: usize) -> String {
    from_alphabet(len, ALPHABET)
}

/// A PIN a person can read aloud: upper-case letters and digits without look-alikes.
pub fn pin() -> String {
    from_alphabet(6, b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789")
}

pub fn bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the OS random generator is available");
    buf
}

fn from_alphabet(len: usize, alphabet: &[u8]) -> String {
    let mut buf = vec![0u8; len];
    getrandom::fill(&mut buf).expect("the OS random generator is available");
    // 256 is not a multiple of the alphabet size; the slight bias is harmless for ids.
    buf.iter()
        .map(|b| alphabet[*b as usize % alphabet.len()] as char)
        .collect()
}
