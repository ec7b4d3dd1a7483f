//! Tokens and roles: verifying Twitch-style extension JWTs, minting our own,
//! and the `Caller` every handler receives.

use std::sync::LazyLock;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::clock::now_secs;
use crate::env::Env;
use crate::error::ApiError;
use crate::ids::{ChannelId, ClientId, UserId, ViewerId};
use crate::registry::{Extension, Registry};

/// Server roles. Twitch's `external` (an EBS-signed token) is our `backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Viewer,
    Broadcaster,
    Moderator,
    Admin,
    Backend,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "viewer" => Role::Viewer,
            "broadcaster" => Role::Broadcaster,
            "moderator" => Role::Moderator,
            "admin" => Role::Admin,
            "backend" | "external" => Role::Backend,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Broadcaster => "broadcaster",
            Role::Moderator => "moderator",
            Role::Admin => "admin",
            Role::Backend => "backend",
        }
    }

    /// Admin and backend act for the whole extension.
    pub fn is_privileged(self) -> bool {
        matches!(self, Role::Admin | Role::Backend)
    }
}

/// The claims we read and write. Twitch's schema plus a few of our own.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Claims {
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opaque_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_unlinked: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_stage: Option<String>,
    /// Our own: the extension a minted token belongs to (Twitch tokens omit it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Our own: the id of a PIN-issued token, inert until its PIN is validated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_token: Option<String>,
    /// Filler varied until the payload's base64url has no `-` or `_` (the
    /// official client decodes it with plain `atob`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
}

/// Who is calling, as proven by a verified token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub client_id: ClientId,
    pub role: Role,
    /// None only for admin/backend tokens without a channel and unbound PIN tokens.
    pub channel_id: Option<ChannelId>,
    pub opaque_user_id: Option<String>,
    pub user_id: Option<UserId>,
    /// Set for PIN-issued tokens; the channel comes from the store once validated.
    pub pin_token: Option<String>,
    /// The token's `exp` (epoch seconds).
    pub expires_at: i64,
}

impl Caller {
    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "role {} may not do this",
                self.role.as_str()
            )))
        }
    }

    pub fn require_privileged(&self) -> Result<(), ApiError> {
        self.require(&[Role::Admin, Role::Backend])
    }

    /// The channel the token is bound to.
    pub fn channel(&self) -> Result<&ChannelId, ApiError> {
        self.channel_id
            .as_ref()
            .ok_or_else(|| ApiError::bad_request("this token names no channel"))
    }

    /// Viewer identity for per-viewer stores: the user id when shared, else the opaque id.
    pub fn viewer_id(&self) -> Result<ViewerId, ApiError> {
        let id = self
            .user_id
            .as_ref()
            .map(|u| u.as_str())
            .or(self.opaque_user_id.as_deref())
            .ok_or_else(|| ApiError::forbidden("this token carries no viewer identity"))?;
        ViewerId::parse(id).map_err(|_| ApiError::unauthorized("the token's user id is malformed"))
    }

    /// Who casts a ballot or holds a rank key: the opaque id, which stays the
    /// same whether or not the viewer shares identity later (else the user id).
    pub fn voter_id(&self) -> Result<ViewerId, ApiError> {
        let id = self
            .opaque_user_id
            .as_deref()
            .or(self.user_id.as_ref().map(|u| u.as_str()))
            .ok_or_else(|| ApiError::forbidden("this token carries no viewer identity"))?;
        ViewerId::parse(id).map_err(|_| ApiError::unauthorized("the token's user id is malformed"))
    }
}

/// Clock-skew allowance on `exp`, in seconds.
const LEEWAY_SECS: u64 = 10;

static VALIDATION: LazyLock<Validation> = LazyLock::new(|| {
    // HS256 pinned: any other `alg` in the header (none, RS256, HS512) is refused.
    let mut v = Validation::new(Algorithm::HS256);
    v.leeway = LEEWAY_SECS;
    v.validate_exp = true;
    v.validate_aud = false; // Twitch tokens have no audience; minted ones say "muxy.io".
    v.set_required_spec_claims(&["exp"]);
    v
});

/// Longest token accepted: a Twitch extension JWT is well under 2 KB.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Longest `Authorization` value accepted, whitespace included.
pub const MAX_AUTHORIZATION_BYTES: usize = 8192;

/// Splits `Authorization: <client_id> <jwt>`.
pub fn parse_authorization(header: Option<&str>) -> Result<(&str, &str), ApiError> {
    let header = header.ok_or_else(|| ApiError::unauthorized("missing Authorization header"))?;
    if header.len() > MAX_AUTHORIZATION_BYTES {
        return Err(ApiError::unauthorized(format!(
            "the Authorization header is longer than {MAX_AUTHORIZATION_BYTES} bytes"
        )));
    }
    let (client_id, token) = header
        .trim()
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthorized("Authorization must be '<client_id> <jwt>'"))?;
    if client_id.eq_ignore_ascii_case("bearer") || client_id.eq_ignore_ascii_case("basic") {
        return Err(ApiError::unauthorized(
            "Authorization must be '<client_id> <jwt>', without a scheme",
        ));
    }
    let token = token.trim();
    if token.len() > MAX_TOKEN_BYTES {
        return Err(ApiError::unauthorized(format!(
            "the token is longer than {MAX_TOKEN_BYTES} bytes"
        )));
    }
    Ok((client_id, token))
}

/// Verifies an `Authorization` header value and returns the caller.
pub fn verify(registry: &Registry, env: Env, header: Option<&str>) -> Result<Caller, ApiError> {
    let (client_id, token) = parse_authorization(header)?;
    let ext = registry
        .get(client_id)
        .ok_or_else(|| ApiError::unauthorized("unknown extension"))?;
    let claims = decode_with_any_secret(ext, token)?;
    caller_from_claims(ext, env, claims)
}

fn decode_with_any_secret(ext: &Extension, token: &str) -> Result<Claims, ApiError> {
    verify_signed(ext, token)
}

/// Claims of any shape from a JWT the extension's secret signed, under the
/// same rules as every token (HS256 pinned, `exp` required, each of the
/// extension's secrets tried while one rotates): Twitch's Bits receipts.
pub fn verify_signed<T: serde::de::DeserializeOwned>(
    ext: &Extension,
    token: &str,
) -> Result<T, ApiError> {
    crate::hs256::install();
    if token.len() > MAX_TOKEN_BYTES {
        return Err(ApiError::unauthorized("token too long"));
    }
    let mut last = ApiError::unauthorized("invalid token signature");
    for secret in &ext.secrets {
        match jsonwebtoken::decode::<T>(token, &secret.decoding, &VALIDATION) {
            Ok(data) => return Ok(data.claims),
            Err(e) => match e.kind() {
                // Signed with another key: try the next one (rotation).
                ErrorKind::InvalidSignature => continue,
                ErrorKind::ExpiredSignature => return Err(ApiError::unauthorized("token expired")),
                ErrorKind::MissingRequiredClaim(c) => {
                    return Err(ApiError::unauthorized(format!("token has no {c} claim")));
                }
                ErrorKind::InvalidAlgorithm => {
                    return Err(ApiError::unauthorized("token algorithm must be HS256"));
                }
                ErrorKind::Json(_) => {
                    last = ApiError::unauthorized("token claims are malformed");
                    break;
                }
                _ => {
                    last = ApiError::unauthorized("malformed token");
                    break;
                }
            },
        }
    }
    Err(last)
}

fn caller_from_claims(ext: &Extension, env: Env, claims: Claims) -> Result<Caller, ApiError> {
    if let Some(cid) = &claims.client_id
        && cid != ext.client_id.as_str()
    {
        return Err(ApiError::unauthorized(
            "the token belongs to another extension than the Authorization client id",
        ));
    }
    if env == Env::Production && claims.allowed_stage.as_deref() == Some("sandbox") {
        return Err(ApiError::unauthorized(
            "sandbox tokens are not accepted in production",
        ));
    }
    let role = claims
        .role
        .as_deref()
        .ok_or_else(|| ApiError::unauthorized("token has no role claim"))?;
    let role = Role::parse(role)
        .ok_or_else(|| ApiError::unauthorized(format!("unknown role {role:?}")))?;
    let channel = claims
        .channel_id
        .as_deref()
        .ok_or_else(|| ApiError::unauthorized("token has no channel_id claim"))?;
    let channel_id = if channel.is_empty() {
        None
    } else {
        Some(
            ChannelId::parse(channel)
                .map_err(|_| ApiError::unauthorized("the token's channel_id is malformed"))?,
        )
    };
    // Twitch roles always act in a channel; only extension-wide roles and
    // not-yet-bound PIN tokens may lack one.
    if channel_id.is_none() && !role.is_privileged() && claims.pin_token.is_none() {
        return Err(ApiError::unauthorized("token has an empty channel_id"));
    }
    let user_id = match claims.user_id.as_deref() {
        None | Some("") => None,
        Some(u) => Some(
            UserId::parse(u)
                .map_err(|_| ApiError::unauthorized("the token's user_id is malformed"))?,
        ),
    };
    Ok(Caller {
        client_id: ext.client_id.clone(),
        role,
        channel_id,
        opaque_user_id: claims.opaque_user_id.filter(|o| !o.is_empty()),
        user_id,
        pin_token: claims.pin_token,
        expires_at: claims.exp,
    })
}

/// The role claim of a GameLink refresh token. It is no Twitch role, so no
/// REST route and no viewer socket accepts a refresh token as a caller.
pub const REFRESH_ROLE: &str = "gamelink_refresh";

/// What a verified GameLink refresh token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refresh {
    /// The PIN-issued token it renews (revoked by `DELETE pin`).
    pub token_id: String,
    pub expires_at: i64,
}

/// Verifies a GameLink refresh token of `ext` exactly as every token is
/// (HS256 pinned, `exp` required, any of the extension's secrets).
pub fn verify_refresh(ext: &Extension, token: &str) -> Result<Refresh, ApiError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(ApiError::unauthorized("the refresh token is too long"));
    }
    let claims = decode_with_any_secret(ext, token)?;
    if claims.client_id.as_deref() != Some(ext.client_id.as_str())
        || claims.role.as_deref() != Some(REFRESH_ROLE)
    {
        return Err(ApiError::unauthorized(
            "this is not a GameLink refresh token of this extension",
        ));
    }
    let token_id = claims
        .pin_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("the refresh token names no session"))?;
    Ok(Refresh {
        token_id,
        expires_at: claims.exp,
    })
}

/// Signs `claims` with the extension's first secret, varying the filler claim
/// until the payload segment contains neither `-` nor `_`.
pub fn mint(ext: &Extension, mut claims: Claims) -> String {
    crate::hs256::install();
    claims.client_id = Some(ext.client_id.to_string());
    let key = &ext.secrets[0].encoding;
    let header = Header::new(Algorithm::HS256);
    for n in 0u32.. {
        claims.n = Some(n);
        let token = jsonwebtoken::encode(&header, &claims, key).expect("HS256 signing cannot fail");
        let payload = token.split('.').nth(1).unwrap_or_default();
        if !payload.contains(['-', '_']) {
            return token;
        }
    }
    unreachable!("some filler value always yields a clean payload")
}

/// Claims for a token of `role` in `channel`, valid for `ttl_secs`.
pub fn claims_for(role: Role, channel: &str, user_id: Option<&str>, ttl_secs: i64) -> Claims {
    let now = now_secs();
    let opaque = match user_id {
        Some(u) => format!("U{u}"),
        None => format!("A{}", crate::random::token_id(12)),
    };
    Claims {
        exp: now + ttl_secs,
        iat: Some(now),
        channel_id: Some(channel.to_string()),
        role: Some(role.as_str().to_string()),
        opaque_user_id: Some(opaque),
        user_id: user_id.map(str::to_string),
        is_unlinked: Some(false),
        ..Claims::default()
    }
}

/// Verified tokens, so a viewer polling with the same token pays for the
/// signature and claims checks once. Keyed by the parsed client id and token
/// (so padding a header does not make a new entry), compared in full; an
/// entry is used only while its token's `exp` holds. The registry and
/// environment of a process never change, so a cached verdict stays correct.
/// Bounded in entries and in bytes: cleared when either is full.
pub struct TokenCache {
    entries: std::sync::Mutex<CacheEntries>,
}

#[derive(Default)]
struct CacheEntries {
    map: std::collections::HashMap<Box<str>, Caller>,
    /// Key bytes plus a fixed allowance per entry for its `Caller`.
    bytes: usize,
}

impl TokenCache {
    const CAPACITY: usize = 8192;
    const MAX_BYTES: usize = 4 << 20;
    /// What one entry costs beside its key (the `Caller` and the map's own).
    const ENTRY_BYTES: usize = 256;

    pub fn new() -> Self {
        TokenCache {
            entries: std::sync::Mutex::new(CacheEntries::default()),
        }
    }

    /// Like [`verify`], answering repeated tokens from the cache.
    pub fn verify(
        &self,
        registry: &Registry,
        env: Env,
        header: Option<&str>,
    ) -> Result<Caller, ApiError> {
        let (client_id, token) = parse_authorization(header)?;
        let key = format!("{client_id} {token}");
        let now = now_secs();
        let still_valid = |c: &Caller| c.expires_at + LEEWAY_SECS as i64 > now;
        if let Some(c) = self.lock().map.get(key.as_str()).filter(|c| still_valid(c)) {
            return Ok(c.clone());
        }
        let caller = verify(registry, env, Some(&key))?;
        let mut entries = self.lock();
        let cost = key.len() + Self::ENTRY_BYTES;
        if entries.map.len() >= Self::CAPACITY || entries.bytes + cost > Self::MAX_BYTES {
            entries.map.clear();
            entries.bytes = 0;
        }
        if entries.map.insert(key.into(), caller.clone()).is_none() {
            entries.bytes += cost;
        }
        Ok(caller)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheEntries> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ClientId;

    fn registry() -> Registry {
        let mut r = Registry::default();
        r.add(ClientId::parse("c").unwrap(), b"k");
        r
    }

    fn header(role: Role, ttl: i64) -> String {
        let reg = registry();
        format!(
            "c {}",
            mint(reg.get("c").unwrap(), claims_for(role, "1", Some("9"), ttl))
        )
    }

    #[test]
    fn cache_answers_like_verify() {
        let (reg, cache) = (registry(), TokenCache::new());
        let h = header(Role::Broadcaster, 60);
        for _ in 0..2 {
            let c = cache.verify(&reg, Env::Sandbox, Some(&h)).unwrap();
            assert_eq!(c.role, Role::Broadcaster);
            assert_eq!(c.user_id.unwrap().as_str(), "9");
        }
        assert_eq!(cache.lock().map.len(), 1);
    }

    #[test]
    fn cache_ignores_entries_past_their_exp() {
        let (reg, cache) = (registry(), TokenCache::new());
        let h = header(Role::Viewer, 60);
        let mut stale = verify(&reg, Env::Sandbox, Some(&h)).unwrap();
        stale.role = Role::Admin;
        stale.expires_at = now_secs() - 3600;
        cache.lock().map.insert(h.as_str().into(), stale);
        // The stale entry is not used: the token is verified afresh.
        assert_eq!(
            cache.verify(&reg, Env::Sandbox, Some(&h)).unwrap().role,
            Role::Viewer
        );
    }

    #[test]
    fn cache_never_stores_failures() {
        let (reg, cache) = (registry(), TokenCache::new());
        let expired = header(Role::Viewer, -3600);
        for _ in 0..2 {
            assert!(cache.verify(&reg, Env::Sandbox, Some(&expired)).is_err());
        }
        assert!(cache.verify(&reg, Env::Sandbox, Some("c garbage")).is_err());
        assert!(cache.verify(&reg, Env::Sandbox, None).is_err());
        assert!(cache.lock().map.is_empty());
    }

    /// Finding 4 of issue #16: the cache was keyed on the raw header, so
    /// one valid token padded with N spaces was a new entry each time (600
    /// requests with 200 KB of padding: RSS from 19 MB to 135 MB).
    #[test]
    fn padded_headers_share_one_entry() {
        let (reg, cache) = (registry(), TokenCache::new());
        let h = header(Role::Viewer, 60);
        let (client, token) = h.split_once(' ').unwrap();
        for n in 1..=50 {
            let pad = " ".repeat(n);
            let padded = format!("{pad}{client}{pad}{token}{pad}");
            cache.verify(&reg, Env::Sandbox, Some(&padded)).unwrap();
        }
        assert_eq!(cache.lock().map.len(), 1);
        // Over the limits: refused before any work, never cached.
        let padded = format!("{client} {token}{}", " ".repeat(MAX_AUTHORIZATION_BYTES));
        let long = format!("{client} {}", "a".repeat(MAX_TOKEN_BYTES + 1));
        for bad in [padded, long] {
            let e = cache.verify(&reg, Env::Sandbox, Some(&bad)).unwrap_err();
            assert!(e.to_string().contains("longer than"), "{e}");
        }
        assert_eq!(cache.lock().map.len(), 1);
    }

    /// The same finding: distinct valid tokens near the size limit never
    /// make the cache hold more than its byte bound.
    #[test]
    fn the_cache_is_bounded_in_bytes() {
        let (reg, cache) = (registry(), TokenCache::new());
        let ext = reg.get("c").unwrap();
        for i in 0..1500 {
            let mut claims = claims_for(Role::Viewer, "1", Some(&i.to_string()), 60);
            claims.opaque_user_id = Some(format!("U{i}{}", "o".repeat(2500)));
            let token = mint(ext, claims);
            assert!(token.len() <= MAX_TOKEN_BYTES);
            cache
                .verify(&reg, Env::Sandbox, Some(&format!("c {token}")))
                .unwrap();
            assert!(cache.lock().bytes <= TokenCache::MAX_BYTES);
        }
        assert!(cache.lock().map.len() < 1500, "it was cleared on the way");
    }

    #[test]
    fn minted_payloads_are_atob_safe() {
        let reg = registry();
        for i in 0..200 {
            let t = mint(
                reg.get("c").unwrap(),
                claims_for(
                    Role::Viewer,
                    &i.to_string(),
                    Some(&(i * 31).to_string()),
                    60,
                ),
            );
            assert!(!t.split('.').nth(1).unwrap().contains(['-', '_']));
        }
    }
}
