//! Which Twitch environment a deployment serves.

use std::str::FromStr;

/// One deployment serves one environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Env {
    Sandbox,
    Production,
}

impl Env {
    pub fn as_str(self) -> &'static str {
        match self {
            Env::Sandbox => "sandbox",
            Env::Production => "production",
        }
    }
}

impl FromStr for Env {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sandbox" => Ok(Env::Sandbox),
            "production" => Ok(Env::Production),
            other => Err(format!(
                "unknown environment {other:?} (sandbox|production)"
            )),
        }
    }
}
