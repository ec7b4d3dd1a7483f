//! Configuration from the environment (Lambda). The dev server takes the same
//! names as flags (clap `env = …`). A missing or malformed variable fails at
//! init with a message naming it.

use crate::delivery::twitch::TwitchConfig;
use crate::env::Env;
pub use crate::error::ConfigError;
use crate::expiry::Expiry;
use crate::registry::Registry;
use crate::store::dynamo::Tables;

pub const ENV_ENVIRONMENT: &str = "MEDKIT_ENV";
pub const ENV_EXTENSIONS: &str = "MEDKIT_EXTENSIONS";
pub const ENV_STORES_TABLE: &str = "MEDKIT_STORES_TABLE";
pub const ENV_AUTH_TABLE: &str = "MEDKIT_AUTH_TABLE";
pub const ENV_AGGREGATES_TABLE: &str = "MEDKIT_AGGREGATES_TABLE";
pub const ENV_CODES_TABLE: &str = "MEDKIT_CODES_TABLE";
pub const ENV_CONNECTIONS_TABLE: &str = "MEDKIT_CONNECTIONS_TABLE";
pub const ENV_PURCHASES_TABLE: &str = "MEDKIT_PURCHASES_TABLE";
pub const ENV_STATE_TTL_DAYS: &str = "MEDKIT_STATE_TTL_DAYS";
/// The WebSocket stage's Management API endpoint
/// (`https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`). Optional:
/// without it events are not delivered; the broadcast function requires it.
pub const ENV_WS_ENDPOINT: &str = "MEDKIT_WS_ENDPOINT";
/// The SQS queue timers wait in (its URL). Optional: without it a function
/// keeps its timers in process, which a frozen Lambda may never run; the
/// socket, aggregate and timers functions have it in `template.yaml`.
pub const ENV_TIMERS_QUEUE_URL: &str = "MEDKIT_TIMERS_QUEUE_URL";

/// Extensions whose sends are relayed to Twitch's Extension PubSub, as
/// `<client id>=<owner user id>` entries, comma-separated (issue #18).
/// Optional: unset or empty, nothing is relayed.
pub const ENV_TWITCH_RELAY: &str = "MEDKIT_TWITCH_RELAY";
/// Helix's base URL for the relay (default `https://api.twitch.tv/helix`;
/// a stand-in on loopback in tests).
pub const ENV_HELIX_URL: &str = "MEDKIT_HELIX_URL";

/// Fails naming `var` when it is unset or blank: for a function that cannot
/// work without an otherwise optional variable (the WebSocket endpoint).
pub fn require_set(var: &'static str) -> Result<(), ConfigError> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Ok(()),
        _ => Err(ConfigError::Missing(var)),
    }
}

/// What a Lambda function needs, read once at init.
#[derive(Debug)]
pub struct LambdaConfig {
    pub env: Env,
    pub registry: Registry,
    pub tables: Tables,
    pub expiry: Expiry,
    pub ws_endpoint: Option<String>,
    pub timers_queue: Option<String>,
    pub twitch: Option<TwitchConfig>,
}

impl LambdaConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Testable core of `from_env`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |var: &'static str| {
            get(var)
                .filter(|v| !v.trim().is_empty())
                .ok_or(ConfigError::Missing(var))
        };
        let env = required(ENV_ENVIRONMENT)?
            .parse()
            .map_err(|reason| ConfigError::Invalid {
                var: ENV_ENVIRONMENT,
                reason,
            })?;
        let registry = Registry::parse(required(ENV_EXTENSIONS)?.split(',')).map_err(|e| {
            ConfigError::Invalid {
                var: ENV_EXTENSIONS,
                reason: e.to_string(),
            }
        })?;
        let tables = Tables {
            stores: required(ENV_STORES_TABLE)?,
            auth: required(ENV_AUTH_TABLE)?,
            aggregates: required(ENV_AGGREGATES_TABLE)?,
            codes: required(ENV_CODES_TABLE)?,
            connections: required(ENV_CONNECTIONS_TABLE)?,
            purchases: required(ENV_PURCHASES_TABLE)?,
        };
        let ws_endpoint = match get(ENV_WS_ENDPOINT).filter(|v| !v.trim().is_empty()) {
            None => None,
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                Some(url.trim().trim_end_matches('/').to_string())
            }
            Some(_) => {
                return Err(ConfigError::Invalid {
                    var: ENV_WS_ENDPOINT,
                    reason: "expected an http(s) URL".into(),
                });
            }
        };
        let timers_queue = match get(ENV_TIMERS_QUEUE_URL).filter(|v| !v.trim().is_empty()) {
            None => None,
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                Some(url.trim().to_string())
            }
            Some(_) => {
                return Err(ConfigError::Invalid {
                    var: ENV_TIMERS_QUEUE_URL,
                    reason: "expected the queue's http(s) URL".into(),
                });
            }
        };
        let expiry = match get(ENV_STATE_TTL_DAYS) {
            None => Expiry::default(),
            Some(days) => match days.trim().parse::<i64>() {
                Ok(d) if (1..=3650).contains(&d) => Expiry::with_state_days(d),
                _ => {
                    return Err(ConfigError::Invalid {
                        var: ENV_STATE_TTL_DAYS,
                        reason: "expected a whole number of days, 1..=3650".into(),
                    });
                }
            },
        };
        let relay = get(ENV_TWITCH_RELAY).unwrap_or_default();
        let twitch = TwitchConfig::parse(relay.split(','), get(ENV_HELIX_URL).as_deref()).map_err(
            |reason| ConfigError::Invalid {
                var: ENV_TWITCH_RELAY,
                reason,
            },
        )?;
        if let Some(t) = &twitch
            && let Some((c, _)) = t
                .owners
                .iter()
                .find(|(c, _)| registry.get(c.as_str()).is_none())
        {
            return Err(ConfigError::Invalid {
                var: ENV_TWITCH_RELAY,
                reason: format!("extension {c} is not in {ENV_EXTENSIONS}"),
            });
        }
        Ok(LambdaConfig {
            env,
            registry,
            tables,
            expiry,
            ws_endpoint,
            timers_queue,
            twitch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const DAY: i64 = 24 * 3600;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const GOOD: &[(&str, &str)] = &[
        (ENV_ENVIRONMENT, "production"),
        (ENV_EXTENSIONS, "abc:c2VjcmV0"),
        (ENV_STORES_TABLE, "s"),
        (ENV_AUTH_TABLE, "a"),
        (ENV_AGGREGATES_TABLE, "g"),
        (ENV_CODES_TABLE, "k"),
        (ENV_CONNECTIONS_TABLE, "w"),
        (ENV_PURCHASES_TABLE, "p"),
    ];

    #[test]
    fn reads_a_complete_environment() {
        let cfg = LambdaConfig::from_lookup(lookup(GOOD)).unwrap();
        assert_eq!(cfg.env, Env::Production);
        assert_eq!(cfg.tables.stores, "s");
        assert_eq!(cfg.expiry.state_secs, 30 * DAY);
    }

    #[test]
    fn names_the_missing_or_bad_variable() {
        for (i, (var, _)) in GOOD.iter().enumerate() {
            let mut vars = GOOD.to_vec();
            vars.remove(i);
            let err = LambdaConfig::from_lookup(lookup(&vars)).unwrap_err();
            assert!(err.to_string().contains(var), "{err}");
        }
        let mut vars = GOOD.to_vec();
        vars[0] = (ENV_ENVIRONMENT, "staging");
        let err = LambdaConfig::from_lookup(lookup(&vars)).unwrap_err();
        assert!(err.to_string().contains(ENV_ENVIRONMENT));
        let mut vars = GOOD.to_vec();
        vars[1] = (ENV_EXTENSIONS, "abc:%%%secretish");
        let err = LambdaConfig::from_lookup(lookup(&vars)).unwrap_err();
        assert!(err.to_string().contains(ENV_EXTENSIONS));
        assert!(!err.to_string().contains("secretish"));
        let mut vars = GOOD.to_vec();
        vars.push((ENV_STATE_TTL_DAYS, "0"));
        assert!(LambdaConfig::from_lookup(lookup(&vars)).is_err());
        let mut vars = GOOD.to_vec();
        vars.push((ENV_WS_ENDPOINT, "wss://x/prod"));
        let err = LambdaConfig::from_lookup(lookup(&vars)).unwrap_err();
        assert!(err.to_string().contains(ENV_WS_ENDPOINT));
    }
}
