//! Game codes on the embedded store. One writer, so a redeem is one
//! transaction: take the next index, record the code for the user.

use redb::ReadableTable;

use super::EmbeddedStore;
use super::records::{
    Body, Record, get_json, get_record, internal, key, put_json, put_record, remove_partition,
    scan_partition,
};
use crate::clock::now_secs;
use crate::codes::{self, AppendError, RedeemError, SetInfo, SetUpload, Standing};
use crate::error::StoreError;
use crate::ids::{ClientId, UserId};
use crate::store::CodeStore;
use crate::store::layout::{self, CHUNK_CODES, code_keys};

/// A set's metadata record. The embedded store runs one writer, so a redeem
/// is one transaction: take the next index, record the code for the user.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct SetMeta {
    name: String,
    generation: String,
    total: usize,
    /// Next index never handed out.
    cursor: usize,
    distributed: usize,
    /// The part ids of the appends this generation took.
    #[serde(default)]
    parts: Vec<String>,
    /// `codes::fingerprint` of the codes, in order (None: a set stored
    /// before fingerprints, which a PUT always replaces).
    #[serde(default)]
    fingerprint: Option<u64>,
}

impl SetMeta {
    fn info(&self, slot: usize) -> SetInfo {
        SetInfo {
            slot,
            name: self.name.clone(),
            generation: self.generation.clone(),
            total: self.total,
            distributed: self.distributed,
        }
    }
}

/// Writes `codes` as chunks of a set, the first one numbered `first_chunk`
/// (appends start a new chunk, so chunk numbers and indices line up again
/// through `index_of`).
fn put_chunks(
    t: &mut redb::Table<&str, &[u8]>,
    pk: &str,
    first_index: usize,
    codes: &[String],
    expires_at: i64,
) -> Result<(), StoreError> {
    // Fill the partial chunk the set ends with first, then whole chunks.
    let mut index = first_index;
    let mut rest = codes;
    while !rest.is_empty() {
        let (chunk, offset) = layout::chunk_of(index);
        let take = (CHUNK_CODES - offset).min(rest.len());
        let k = key(pk, &code_keys::chunk_sk(chunk));
        let mut text = match get_record(t, &k, i64::MIN)? {
            Some(Record {
                body: Body::Text(t),
                ..
            }) if offset > 0 => t,
            _ => String::new(),
        };
        if offset > 0 {
            text.push('\n');
        }
        text.push_str(&layout::encode_chunk(&rest[..take]));
        put_record(
            t,
            &k,
            &Record {
                expires_at,
                body: Body::Text(text),
            },
        )?;
        index += take;
        rest = &rest[take..];
    }
    Ok(())
}

fn code_at(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    pk: &str,
    index: usize,
) -> Result<String, StoreError> {
    let (chunk, offset) = layout::chunk_of(index);
    match get_record(t, &key(pk, &code_keys::chunk_sk(chunk)), i64::MIN)? {
        Some(Record {
            body: Body::Text(text),
            ..
        }) => layout::decode_chunk(&text)
            .get(offset)
            .map(|c| c.to_string())
            .ok_or_else(|| internal("code index beyond its chunk")),
        _ => Err(internal("missing code chunk")),
    }
}

fn set_expiry(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    k: &str,
) -> Result<i64, StoreError> {
    Ok(get_record(t, k, i64::MIN)?
        .map(|r| r.expires_at)
        .unwrap_or(0))
}

impl CodeStore for EmbeddedStore {
    async fn put_set(
        &self,
        client: &ClientId,
        set: &SetUpload,
        expires_at: i64,
    ) -> Result<SetInfo, StoreError> {
        let meta_k = key(&code_keys::sets(client), &code_keys::slot_sk(set.slot));
        let generation = crate::random::token_id(10);
        let chunks_pk = code_keys::chunks(client, set.slot, &generation);
        let fingerprint = codes::fingerprint(codes::FINGERPRINT_START, &set.codes);
        let meta = SetMeta {
            name: set.name.clone(),
            generation,
            total: set.codes.len(),
            cursor: 0,
            distributed: 0,
            parts: Vec::new(),
            fingerprint: Some(fingerprint),
        };
        let codes = set.codes.clone();
        let slot = set.slot;
        let client = client.clone();
        self.write(move |t| {
            // The same codes again: a rename; distribution and caps stay.
            if let Some(mut live) = get_json::<SetMeta>(t, &meta_k, now_secs())?
                && live.fingerprint == Some(fingerprint)
                && live.total == codes.len()
            {
                live.name = meta.name;
                let expires_at = set_expiry(t, &meta_k)?;
                put_json(t, &meta_k, &live, expires_at)?;
                return Ok(live.info(slot));
            }
            // The previous generation's chunks go with it.
            if let Some(old) = get_json::<SetMeta>(t, &meta_k, i64::MIN)? {
                remove_partition(t, &code_keys::chunks(&client, slot, &old.generation))?;
            }
            put_chunks(t, &chunks_pk, 0, &codes, expires_at)?;
            put_json(t, &meta_k, &meta, expires_at)?;
            Ok(meta.info(slot))
        })
        .await
    }

    async fn append_codes(
        &self,
        client: &ClientId,
        slot: usize,
        codes: &[String],
        part: Option<&str>,
    ) -> Result<Option<SetInfo>, AppendError> {
        let meta_k = key(&code_keys::sets(client), &code_keys::slot_sk(slot));
        let codes = codes.to_vec();
        let client = client.clone();
        let part = part.map(str::to_string);
        self.write(move |t| {
            let Some(mut meta) = get_json::<SetMeta>(t, &meta_k, now_secs())? else {
                return Ok(None);
            };
            if let Some(p) = &part {
                if meta.parts.contains(p) {
                    return Ok(Some(meta.info(slot)));
                }
                meta.parts.push(p.clone());
            }
            codes::check_append(slot, meta.total, codes.len())?;
            let expires_at = set_expiry(t, &meta_k)?;
            let pk = code_keys::chunks(&client, slot, &meta.generation);
            put_chunks(t, &pk, meta.total, &codes, expires_at)?;
            meta.total += codes.len();
            meta.fingerprint = meta.fingerprint.map(|f| codes::fingerprint(f, &codes));
            put_json(t, &meta_k, &meta, expires_at)?;
            Ok(Some(meta.info(slot)))
        })
        .await
    }

    async fn sets(&self, client: &ClientId) -> Result<Vec<SetInfo>, StoreError> {
        let pk = code_keys::sets(client);
        self.read(move |t| {
            scan_partition(t, &pk, None, usize::MAX, now_secs())?
                .into_iter()
                .map(|(sk, rec)| {
                    let slot: usize = sk.parse().map_err(internal)?;
                    match rec.body {
                        Body::Text(text) => serde_json::from_str::<SetMeta>(&text)
                            .map(|m| m.info(slot))
                            .map_err(internal),
                        _ => Err(internal("unexpected record kind")),
                    }
                })
                .collect::<Result<Vec<_>, _>>()
                .map(|mut v| {
                    v.sort_by_key(|s| s.slot);
                    v
                })
        })
        .await
    }

    async fn delete_sets(&self, client: &ClientId) -> Result<Vec<SetInfo>, StoreError> {
        let sets = self.sets(client).await?;
        let pk = code_keys::sets(client);
        let client = client.clone();
        let gone = sets.clone();
        self.write(move |t| {
            for s in &gone {
                remove_partition(t, &code_keys::chunks(&client, s.slot, &s.generation))?;
            }
            remove_partition(t, &pk)
        })
        .await?;
        Ok(sets)
    }

    async fn raise_caps(
        &self,
        client: &ClientId,
        users: &[UserId],
        caps: &[(SetInfo, u32)],
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let keys: Vec<(String, String, u32)> = users
            .iter()
            .flat_map(|u| {
                caps.iter().map(move |(set, cap)| {
                    (
                        code_keys::standing(client, u),
                        code_keys::standing_sk(set.slot, &set.generation),
                        *cap,
                    )
                })
            })
            .collect();
        self.write(move |t| {
            for (pk, sk, cap) in keys {
                let k = key(&pk, &sk);
                let mut st: Standing = get_json(t, &k, now_secs())?.unwrap_or_default();
                if st.cap < cap {
                    st.cap = cap;
                    put_json(t, &k, &st, expires_at)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn standings(
        &self,
        client: &ClientId,
        user: &UserId,
        sets: &[SetInfo],
    ) -> Result<Vec<Standing>, StoreError> {
        let pk = code_keys::standing(client, user);
        let sks: Vec<String> = sets
            .iter()
            .map(|s| code_keys::standing_sk(s.slot, &s.generation))
            .collect();
        self.read(move |t| {
            let now = now_secs();
            sks.iter()
                .map(|sk| Ok(get_json(t, &key(&pk, sk), now)?.unwrap_or_default()))
                .collect()
        })
        .await
    }

    async fn redeem(
        &self,
        client: &ClientId,
        user: &UserId,
        slot: usize,
    ) -> Result<(String, Vec<String>), RedeemError> {
        let meta_k = key(&code_keys::sets(client), &code_keys::slot_sk(slot));
        let (client, user) = (client.clone(), user.clone());
        let faults = self.faults.clone();
        self.write(move |t| {
            let now = now_secs();
            let mut meta: SetMeta = get_json(t, &meta_k, now)?.ok_or(RedeemError::NoSet(slot))?;
            let standing_k = key(
                &code_keys::standing(&client, &user),
                &code_keys::standing_sk(slot, &meta.generation),
            );
            let mut st: Standing = get_json(t, &standing_k, now)?.unwrap_or_default();
            if st.claimable() == 0 {
                return Err(RedeemError::NotEligible(slot));
            }
            // The next code never handed out by this extension: a code an
            // earlier set gave is skipped for good.
            let chunks = code_keys::chunks(&client, slot, &meta.generation);
            let expires_at = set_expiry(t, &meta_k)?;
            let code = loop {
                if meta.cursor >= meta.total {
                    put_json(t, &meta_k, &meta, expires_at)?;
                    return Err(RedeemError::Exhausted(slot));
                }
                let code = code_at(t, &chunks, meta.cursor)?;
                let given_k = key(&code_keys::given(&client, &code), &code);
                if get_record(t, &given_k, now)?.is_none() {
                    break code;
                }
                meta.cursor += 1;
            };
            // A crash here aborts the whole transaction: the index is not
            // taken, nothing is recorded, nothing is lost.
            if faults.take_redeem_crash() {
                return Err(RedeemError::Store(StoreError::Unavailable(
                    "injected crash after claiming a code".into(),
                )));
            }
            meta.cursor += 1;
            meta.distributed += 1;
            st.held.push(code.clone());
            put_json(t, &meta_k, &meta, expires_at)?;
            put_json(t, &standing_k, &st, expires_at)?;
            // Remembered for the codes' retention, counted from now.
            let given = Record {
                expires_at: now + codes::SET_TTL_SECS,
                body: Body::Text(user.to_string()),
            };
            put_record(t, &key(&code_keys::given(&client, &code), &code), &given)?;
            Ok((code, st.held))
        })
        .await
    }
}
