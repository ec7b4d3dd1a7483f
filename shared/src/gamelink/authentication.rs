//! `authenticate`: a game logs in with the PIN the broadcaster got from the
//! extension, or, in a later session, with the refresh token a PIN login
//! returned (`schema/authentication.h`: `{pin | refresh, client_id,
//! game_id?}`). The answer is `{jwt, refresh, twitch_name, twitch_id}`.
//! A game server logs in with `{jwt, client_id}`: a token the extension
//! signed (role `backend` or `admin`), for matches across channels.

use serde_json::Value;

use super::envelope::GamelinkError;
use crate::ids::ClientId;

/// Longest PIN accepted (medkit's are 6 characters).
const MAX_PIN: usize = 16;
/// Longest refresh token (or server token) accepted.
const MAX_REFRESH: usize = 512;
/// Longest game id accepted.
const MAX_GAME_ID: usize = 128;

/// What a game logs in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    Pin(String),
    Refresh(String),
    /// A game server's token, signed by the extension.
    Server(String),
}

/// An `authenticate` request's body, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub login: Login,
    pub client_id: ClientId,
    pub game_id: Option<String>,
}

fn text<'a>(data: &'a Value, field: &str) -> Result<Option<&'a str>, GamelinkError> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(GamelinkError::bad_request(format!("{field} is a string"))),
    }
}

/// Reads an `authenticate` body: exactly one of `pin` and `refresh`, the
/// extension's `client_id`, and an optional `game_id`.
pub fn parse(data: &Value) -> Result<Credentials, GamelinkError> {
    if !data.is_object() {
        return Err(GamelinkError::bad_request(
            "authenticate needs {pin or refresh, client_id} (a game server: {jwt, client_id})",
        ));
    }
    let given = [
        text(data, "pin")?,
        text(data, "refresh")?,
        text(data, "jwt")?,
    ];
    let login = match given {
        [Some(pin), None, None] => {
            let pin = pin.trim();
            if pin.is_empty()
                || pin.len() > MAX_PIN
                || !pin.chars().all(|c| c.is_ascii_alphanumeric())
            {
                return Err(GamelinkError::bad_request(format!(
                    "a PIN is 1 to {MAX_PIN} letters or digits"
                )));
            }
            // PINs are shown in capitals; a player may type them in any case.
            Login::Pin(pin.to_ascii_uppercase())
        }
        [None, Some(token), None] | [None, None, Some(token)] => {
            if token.is_empty() || token.len() > MAX_REFRESH {
                return Err(GamelinkError::bad_request(format!(
                    "a token is 1 to {MAX_REFRESH} characters"
                )));
            }
            match given[1] {
                Some(_) => Login::Refresh(token.to_string()),
                None => Login::Server(token.to_string()),
            }
        }
        [None, None, None] => {
            return Err(GamelinkError::bad_request(
                "a pin, a refresh token or (a game server) a jwt is required",
            ));
        }
        _ => {
            return Err(GamelinkError::bad_request(
                "send one of pin, refresh and jwt",
            ));
        }
    };
    let client_id = text(data, "client_id")?
        .ok_or_else(|| GamelinkError::bad_request("client_id is required"))
        .and_then(|c| ClientId::parse(c).map_err(|e| GamelinkError::bad_request(e.to_string())))?;
    let game_id = match text(data, "game_id")? {
        None | Some("") => None,
        Some(g) if g.len() > MAX_GAME_ID || g.chars().any(char::is_control) => {
            return Err(GamelinkError::bad_request(format!(
                "game_id is at most {MAX_GAME_ID} characters, one line"
            )));
        }
        Some(g) => Some(g.to_string()),
    };
    Ok(Credentials {
        login,
        client_id,
        game_id,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pin_and_refresh_logins_as_the_library_sends_them() {
        let c = parse(&json!({"client_id": "abc", "pin": "xy12z3"})).unwrap();
        assert_eq!(c.login, Login::Pin("XY12Z3".into()));
        assert_eq!((c.client_id.as_str(), c.game_id), ("abc", None));
        let c =
            parse(&json!({"client_id": "abc", "game_id": "my-game", "refresh": "r.t"})).unwrap();
        assert_eq!(c.login, Login::Refresh("r.t".into()));
        assert_eq!(c.game_id.as_deref(), Some("my-game"));
        let c = parse(&json!({"client_id": "abc", "jwt": "h.p.s"})).unwrap();
        assert_eq!(c.login, Login::Server("h.p.s".into()));
    }

    #[test]
    fn bad_logins_are_refused() {
        for (body, says) in [
            (json!(null), "pin or refresh"),
            (json!({"client_id": "abc", "jwt": 5}), "is a string"),
            (json!({"client_id": "abc"}), "required"),
            (
                json!({"client_id": "abc", "pin": "A", "refresh": "r"}),
                "one of pin, refresh and jwt",
            ),
            (
                json!({"client_id": "abc", "refresh": "r", "jwt": "j"}),
                "one of pin, refresh and jwt",
            ),
            (
                json!({"client_id": "abc", "pin": "12 34"}),
                "letters or digits",
            ),
            (json!({"client_id": "abc", "pin": ""}), "letters or digits"),
            (json!({"client_id": "abc", "pin": 123456}), "is a string"),
            (json!({"pin": "ABC123"}), "client_id"),
            (json!({"client_id": "a|b", "pin": "ABC123"}), "client id"),
            (
                json!({"client_id": "abc", "refresh": "x".repeat(513)}),
                "a token is",
            ),
            (json!({"client_id": "abc", "jwt": ""}), "a token is"),
            (
                json!({"client_id": "abc", "pin": "A1", "game_id": "x\ny"}),
                "game_id",
            ),
        ] {
            let e = parse(&body).unwrap_err();
            assert_eq!(e.number, 400);
            assert!(e.detail.contains(says), "{body}: {}", e.detail);
        }
    }
}
