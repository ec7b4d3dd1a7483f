//! The embedded adapter's records: one redb table of `pk \0 sk` → record
//! (so the key layout mirrors the DynamoDB adapter's items), each record an
//! expiry and a body; and the reads and writes every port implementation
//! uses. Expired records are skipped by every reader.

use redb::{ReadableTable, TableDefinition};
use serde_json::Value;

use crate::error::StoreError;
use crate::store::codec::{self, Encoded};

pub(super) const ITEMS: TableDefinition<&str, &[u8]> = TableDefinition::new("items");

/// A stored record: expiry, a version, and an optional encoded document.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Record {
    pub expires_at: i64,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Body {
    Empty,
    Doc(Encoded),
    Text(String),
    Bytes(Vec<u8>),
}

impl Record {
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.expires_at.to_be_bytes().to_vec();
        match &self.body {
            Body::Empty => out.push(0),
            Body::Doc(Encoded::Plain(s)) => {
                out.push(1);
                out.extend_from_slice(s.as_bytes());
            }
            Body::Doc(Encoded::Zlib(b)) => {
                out.push(2);
                out.extend_from_slice(b);
            }
            Body::Text(s) => {
                out.push(3);
                out.extend_from_slice(s.as_bytes());
            }
            Body::Bytes(b) => {
                out.push(4);
                out.extend_from_slice(b);
            }
        }
        out
    }

    pub(super) fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        let bad = || StoreError::Internal("corrupt embedded record".into());
        if bytes.len() < 9 {
            return Err(bad());
        }
        let expires_at = i64::from_be_bytes(bytes[..8].try_into().map_err(|_| bad())?);
        let rest = &bytes[9..];
        let text = || String::from_utf8(rest.to_vec()).map_err(|_| bad());
        let body = match bytes[8] {
            0 => Body::Empty,
            1 => Body::Doc(Encoded::Plain(text()?)),
            2 => Body::Doc(Encoded::Zlib(rest.to_vec())),
            3 => Body::Text(text()?),
            4 => Body::Bytes(rest.to_vec()),
            _ => return Err(bad()),
        };
        Ok(Record { expires_at, body })
    }

    pub(super) fn live(self, now: i64) -> Option<Self> {
        (self.expires_at > now).then_some(self)
    }

    /// A JSON text body (`put_json`) as `T`.
    pub(super) fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, StoreError> {
        match &self.body {
            Body::Text(t) => serde_json::from_str(t).map_err(internal),
            _ => Err(internal("unexpected record kind")),
        }
    }

    pub(super) fn doc(&self) -> Result<Option<Value>, StoreError> {
        match &self.body {
            Body::Doc(enc) => codec::decode(enc).map(Some),
            _ => Ok(None),
        }
    }
}

pub(super) fn key(pk: &str, sk: &str) -> String {
    format!("{pk}\0{sk}")
}

pub(super) fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}

pub(super) fn get_record(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    k: &str,
    now: i64,
) -> Result<Option<Record>, StoreError> {
    match table.get(k).map_err(internal)? {
        Some(v) => Ok(Record::from_bytes(v.value())?.live(now)),
        None => Ok(None),
    }
}

pub(super) fn put_record(
    table: &mut redb::Table<&str, &[u8]>,
    k: &str,
    rec: &Record,
) -> Result<(), StoreError> {
    table
        .insert(k, rec.to_bytes().as_slice())
        .map_err(internal)?;
    Ok(())
}

/// Live keys under `pk`, strictly after `after`, at most `limit`.
pub(super) fn scan_partition(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    pk: &str,
    after: Option<&str>,
    limit: usize,
    now: i64,
) -> Result<Vec<(String, Record)>, StoreError> {
    let prefix = format!("{pk}\0");
    let start = key(pk, after.unwrap_or(""));
    let mut out = Vec::new();
    for entry in table.range(start.as_str()..).map_err(internal)? {
        let (k, v) = entry.map_err(internal)?;
        let Some(sk) = k.value().strip_prefix(prefix.as_str()) else {
            break;
        };
        if after.is_some_and(|a| sk == a) {
            continue;
        }
        if let Some(rec) = Record::from_bytes(v.value())?.live(now) {
            out.push((sk.to_string(), rec));
            if out.len() == limit {
                break;
            }
        }
    }
    Ok(out)
}

pub(super) fn get_json<T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    k: &str,
    now: i64,
) -> Result<Option<T>, StoreError> {
    match get_record(table, k, now)? {
        Some(Record {
            body: Body::Text(t),
            ..
        }) => serde_json::from_str(&t).map(Some).map_err(internal),
        Some(_) => Err(internal("unexpected record kind")),
        None => Ok(None),
    }
}

pub(super) fn put_json<T: serde::Serialize>(
    table: &mut redb::Table<&str, &[u8]>,
    k: &str,
    value: &T,
    expires_at: i64,
) -> Result<(), StoreError> {
    let text = serde_json::to_string(value).map_err(internal)?;
    put_record(
        table,
        k,
        &Record {
            expires_at,
            body: Body::Text(text),
        },
    )
}

/// Removes every item of a partition, live or expired.
pub(super) fn remove_partition(
    table: &mut redb::Table<&str, &[u8]>,
    pk: &str,
) -> Result<(), StoreError> {
    let keys: Vec<String> = scan_partition(table, pk, None, usize::MAX, i64::MIN)?
        .into_iter()
        .map(|(sk, _)| key(pk, &sk))
        .collect();
    for k in keys {
        table.remove(k.as_str()).map_err(internal)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        for body in [
            Body::Empty,
            Body::Doc(Encoded::Plain("{}".into())),
            Body::Doc(Encoded::Zlib(vec![1, 2, 3])),
            Body::Text("abc".into()),
            Body::Bytes(vec![0, 255]),
        ] {
            let rec = Record {
                expires_at: 1234,
                body,
            };
            assert_eq!(Record::from_bytes(&rec.to_bytes()).unwrap(), rec);
        }
        assert!(Record::from_bytes(&[1, 2]).is_err());
    }
}
