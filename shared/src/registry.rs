//! Which extensions this deployment serves, and their secrets.
//!
//! Configured as `client_id:base64secret` entries (env `MEDKIT_EXTENSIONS`,
//! comma-separated; the same client id may appear several times while a secret
//! is rotated). Secrets are never printed: `Debug` redacts them.

use std::collections::HashMap;
use std::fmt;

use base64::Engine;
use jsonwebtoken::{DecodingKey, EncodingKey};

use crate::ids::ClientId;

/// One HS256 key of an extension, decoded once at start-up.
pub struct Secret {
    pub(crate) decoding: DecodingKey,
    pub(crate) encoding: EncodingKey,
}

pub struct Extension {
    pub client_id: ClientId,
    /// The first one signs; all of them verify.
    pub(crate) secrets: Vec<Secret>,
}

#[derive(Default)]
pub struct Registry {
    extensions: HashMap<String, Extension>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    #[error("extension entry {0:?} is not of the form <client_id>:<base64 secret>")]
    Malformed(String),
    #[error("the secret of extension {0} is not valid base64")]
    BadSecret(String),
    #[error("the secret of extension {0} is empty")]
    EmptySecret(String),
    #[error("no extension configured")]
    Empty,
}

impl Registry {
    /// Parses `client_id:base64secret` entries. Never includes secret text in errors.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, RegistryError> {
        let mut reg = Registry::default();
        for entry in entries {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let (id, secret) = entry
                .split_once(':')
                .ok_or_else(|| RegistryError::Malformed(redact_entry(entry)))?;
            let client_id =
                ClientId::parse(id).map_err(|_| RegistryError::Malformed(redact_entry(entry)))?;
            let bytes = decode_secret(secret.trim())
                .ok_or_else(|| RegistryError::BadSecret(id.to_string()))?;
            if bytes.is_empty() {
                return Err(RegistryError::EmptySecret(id.to_string()));
            }
            reg.add(client_id, &bytes);
        }
        if reg.extensions.is_empty() {
            return Err(RegistryError::Empty);
        }
        Ok(reg)
    }

    /// Adds a secret (raw bytes, already base64-decoded) to an extension.
    pub fn add(&mut self, client_id: ClientId, secret: &[u8]) {
        let ext = self
            .extensions
            .entry(client_id.as_str().to_string())
            .or_insert_with(|| Extension {
                client_id,
                secrets: Vec::new(),
            });
        ext.secrets.push(Secret {
            decoding: DecodingKey::from_secret(secret),
            encoding: EncodingKey::from_secret(secret),
        });
    }

    pub fn get(&self, client_id: &str) -> Option<&Extension> {
        self.extensions.get(client_id)
    }

    pub fn client_ids(&self) -> impl Iterator<Item = &ClientId> {
        self.extensions.values().map(|e| &e.client_id)
    }
}

/// Twitch shows secrets as standard base64; accept URL-safe and unpadded too.
pub fn decode_secret(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(s).ok())
}

fn redact_entry(entry: &str) -> String {
    match entry.split_once(':') {
        Some((id, _)) => format!("{id}:<redacted>"),
        None if entry.len() > 8 => format!("{}…", &entry[..4]),
        None => "<redacted>".into(),
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_map();
        for ext in self.extensions.values() {
            list.entry(
                &ext.client_id.as_str(),
                &format_args!("{} secret(s), redacted", ext.secrets.len()),
            );
        }
        list.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entries_and_rotation() {
        let reg = Registry::parse(["a:c2VjcmV0", "a:b3RoZXI=", " b:eHl6 "]).unwrap();
        assert_eq!(reg.get("a").unwrap().secrets.len(), 2);
        assert_eq!(reg.get("b").unwrap().secrets.len(), 1);
        assert!(reg.get("c").is_none());
    }

    #[test]
    fn rejects_bad_entries_without_leaking_secrets() {
        let err = Registry::parse(["nocolon-supersecretvalue"]).unwrap_err();
        assert!(!err.to_string().contains("supersecret"));
        let err = Registry::parse(["a:!!!not base64!!!"]).unwrap_err();
        assert_eq!(err, RegistryError::BadSecret("a".into()));
        assert!(!err.to_string().contains("not base64"));
        assert_eq!(Registry::parse([""]).unwrap_err(), RegistryError::Empty);
    }

    #[test]
    fn debug_redacts() {
        let reg = Registry::parse(["a:c2VjcmV0"]).unwrap();
        let shown = format!("{reg:?}");
        assert!(shown.contains("redacted"));
        assert!(!shown.contains("c2VjcmV0"));
    }
}
