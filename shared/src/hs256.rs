//! The one signature algorithm of every token medkit reads or writes, HS256,
//! as `jsonwebtoken`'s crypto provider: HMAC-SHA256 from RustCrypto's `hmac`
//! and `sha2` (the versions the AWS SDK's request signing already links).
//!
//! It replaces `jsonwebtoken`'s own `rust_crypto` provider, which links RSA,
//! ECDSA and EdDSA into every binary (~0.3 MB) for tokens medkit refuses
//! anyway; here any other algorithm is an error even if a validation let it
//! through. [`install`] runs before the first signature is made or checked
//! (`auth::mint`, `auth::verify`).

use std::sync::Once;

use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};
use sha2::Sha256;

/// HMAC-SHA256 under one key.
struct Hs256(Hmac<Sha256>);

impl Hs256 {
    fn new(alg: &Algorithm, family: AlgorithmFamily, secret: &[u8]) -> Result<Self> {
        if *alg != Algorithm::HS256 || family != AlgorithmFamily::Hmac {
            return Err(ErrorKind::InvalidAlgorithm.into());
        }
        Hmac::new_from_slice(secret)
            .map(Hs256)
            .map_err(|_| ErrorKind::InvalidKeyFormat.into())
    }
}

impl Signer<Vec<u8>> for Hs256 {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        let mut mac = self.0.clone();
        mac.update(msg);
        Ok(mac.finalize().into_bytes().to_vec())
    }
}

impl Verifier<Vec<u8>> for Hs256 {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        let mut mac = self.0.clone();
        mac.update(msg);
        // Constant-time comparison.
        mac.verify_slice(sig).map_err(signature::Error::from_source)
    }
}

impl JwtSigner for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl JwtVerifier for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

fn signer(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    Ok(Box::new(Hs256::new(alg, key.family(), key.as_bytes())?))
}

fn verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    Ok(Box::new(Hs256::new(
        alg,
        key.family(),
        key.try_get_as_bytes()?,
    )?))
}

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: signer,
    verifier_factory: verifier,
    // JWK handling (key thumbprints, RSA/EC components) is never used.
    key_utils: KeyUtils::new_unimplemented(),
};

/// Makes HS256 the process's provider; later calls do nothing.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Fails only if another provider was installed first, which nothing does.
        let _ = PROVIDER.install_default();
    });
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation, decode, encode};
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn signs_and_verifies_hs256_and_nothing_else() {
        install();
        let claims = json!({"exp": 4_102_444_800_i64, "role": "viewer"});
        let token = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"k"),
        )
        .unwrap();
        // A published HS256 vector would pin the bytes; checking with an
        // independent HMAC pins the same thing.
        let (signed, sig) = token.rsplit_once('.').unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(b"k").unwrap();
        mac.update(signed.as_bytes());
        use base64::Engine;
        let expected =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        assert_eq!(sig, expected);
        let v = Validation::new(Algorithm::HS256);
        let back = decode::<Value>(&token, &DecodingKey::from_secret(b"k"), &v).unwrap();
        assert_eq!(back.claims, claims);
        assert!(decode::<Value>(&token, &DecodingKey::from_secret(b"other"), &v).is_err());
        // Another HMAC size is refused by the provider itself.
        let err = encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(b"k"),
        )
        .unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::InvalidAlgorithm);
    }
}
