//! Bits purchases: a viewer buys an extension product with Bits; the
//! official client posts Twitch's transaction (`POST bits/transactions`);
//! medkit records it once, by its transaction id, and delivers it to the
//! channel's games until one of them validates it (GameLink
//! `twitchPurchaseBits` and `transaction`).
//!
//! The facts of a purchase come from Twitch's receipt, a JWT the extension
//! secret signed (topic `bits_transaction_receipt`), never from the
//! unsigned fields beside it. The sandbox does not verify transactions (the
//! official client's `purchase()` simulation signs nothing): there a receipt
//! that does not verify is accepted, its facts taken from the body, and the
//! purchase marked `sandbox`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::ApiError;

/// The `topic` claim of a Twitch Bits receipt.
pub const RECEIPT_TOPIC: &str = "bits_transaction_receipt";
/// How long a purchase is kept after it was recorded (then DynamoDB's TTL
/// removes it): long enough for a game that was offline for weeks to
/// receive it, and for the extension's books.
pub const KEEP_SECS: i64 = 90 * 24 * 3600;
/// Longest transaction id, SKU, product or user name accepted.
pub const MAX_FIELD: usize = 256;
/// Purchases one listing returns, at most (the newest).
pub const MAX_LISTED: usize = 1000;

/// Where a purchase is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Recorded; no game has been sent it yet.
    Received,
    /// Sent to at least one game; none has confirmed it.
    Delivered,
    /// A game confirmed that it fulfilled it: never delivered again.
    Validated,
    /// Refunded by the channel's game: never delivered again.
    Refunded,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Received => "received",
            State::Delivered => "delivered",
            State::Validated => "validated",
            State::Refunded => "refunded",
        }
    }
}

/// A purchase as medkit keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Purchase {
    /// Twitch's transaction id: the key (one record per id and extension).
    pub id: String,
    /// medkit's own id of it (the library's `muxy_id`).
    pub muxy_id: String,
    pub channel: String,
    pub sku: String,
    /// The product's display name.
    pub display_name: String,
    /// The buyer's Twitch user id.
    pub user_id: String,
    /// The buyer's display name, as the client sent it (user-controlled).
    pub username: String,
    pub cost: i64,
    /// `bits`.
    pub currency: String,
    /// When Twitch says it happened, ms since the epoch (when recorded, if
    /// the receipt's time does not read).
    pub timestamp: i64,
    pub state: State,
    /// Accepted unverified, in the sandbox.
    pub sandbox: bool,
    /// What the validating game said about its fulfilment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    /// When medkit recorded it, seconds since the epoch.
    pub recorded_at: i64,
}

impl Purchase {
    /// The library's `Transaction` (`schema/purchase.h`).
    pub fn game_body(&self) -> Value {
        json!({
            "id": self.id,
            "muxy_id": self.muxy_id,
            "sku": self.sku,
            "displayName": self.display_name,
            "userId": self.user_id,
            "username": self.username,
            "cost": self.cost,
            "currency": self.currency,
            "timestamp": self.timestamp,
            "additional": {},
        })
    }

    /// Still to be fulfilled: games hear of it until one validates it.
    pub fn is_outstanding(&self) -> bool {
        matches!(self.state, State::Received | State::Delivered)
    }

    /// Whether a subscription to `sku` (or `*`) covers it.
    pub fn matches_sku(&self, sku: &str) -> bool {
        sku == "*" || self.sku == sku
    }

    /// What REST's listing shows.
    pub fn listing(&self) -> Value {
        let mut v = self.game_body();
        v["state"] = json!(self.state.as_str());
        v["sandbox"] = json!(self.sandbox);
        v["channel_id"] = json!(self.channel);
        if let Some(d) = &self.details {
            v["details"] = json!(d);
        }
        v
    }
}

/// A channel's listing: newest first, at most [`MAX_LISTED`].
pub fn newest_first(mut all: Vec<Purchase>) -> Vec<Purchase> {
    all.sort_by(|a, b| b.timestamp.cmp(&a.timestamp).then(b.id.cmp(&a.id)));
    all.truncate(MAX_LISTED);
    all
}

/// The facts of a purchase: from a verified receipt, or (sandbox) the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub transaction_id: String,
    pub user_id: String,
    pub sku: String,
    pub display_name: String,
    pub cost: i64,
    pub currency: String,
    /// ms since the epoch, when the receipt's time reads.
    pub at_ms: Option<i64>,
}

/// A receipt's claims (`exp` is checked by the token rules).
#[derive(Debug, Deserialize)]
pub struct ReceiptClaims {
    #[serde(default)]
    topic: String,
    data: ReceiptData,
}

#[derive(Debug, Deserialize)]
struct ReceiptData {
    #[serde(rename = "transactionId")]
    transaction_id: String,
    #[serde(default)]
    time: Option<String>,
    #[serde(rename = "userId")]
    user_id: String,
    product: Product,
}

#[derive(Debug, Deserialize)]
struct Product {
    sku: String,
    #[serde(rename = "displayName", default)]
    display_name: String,
    cost: Cost,
}

#[derive(Debug, Deserialize)]
struct Cost {
    amount: i64,
    #[serde(rename = "type", default)]
    kind: String,
}

fn bounded(field: &str, v: String) -> Result<String, ApiError> {
    if v.is_empty() || v.len() > MAX_FIELD || v.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{field} is 1 to {MAX_FIELD} characters, one line"
        )));
    }
    Ok(v)
}

impl ReceiptClaims {
    /// The facts of a verified receipt; a receipt of another kind, or one
    /// with fields out of bounds, is refused.
    pub fn facts(self) -> Result<Facts, ApiError> {
        if self.topic != RECEIPT_TOPIC {
            return Err(ApiError::bad_request(format!(
                "the transaction receipt's topic is not {RECEIPT_TOPIC}"
            )));
        }
        facts(
            self.data.transaction_id,
            self.data.user_id,
            self.data.product,
            self.data.time.as_deref().and_then(receipt_time_ms),
        )
    }
}

fn facts(id: String, user: String, p: Product, at_ms: Option<i64>) -> Result<Facts, ApiError> {
    if !(0..=1_000_000).contains(&p.cost.amount) {
        return Err(ApiError::bad_request(
            "product.cost.amount is 0 to 1,000,000",
        ));
    }
    let currency = if p.cost.kind.is_empty() {
        "bits".to_string()
    } else {
        bounded("product.cost.type", p.cost.kind)?
    };
    let display_name = match p.display_name.is_empty() {
        true => String::new(),
        false => bounded("product.displayName", p.display_name)?,
    };
    Ok(Facts {
        transaction_id: bounded("transactionId", id)?,
        user_id: bounded("userId", user)?,
        sku: bounded("product.sku", p.sku)?,
        display_name,
        cost: p.cost.amount,
        currency,
        at_ms,
    })
}

/// Twitch's receipt time (`2026-12-01 10:00:00.123 +0000 UTC`, Go's
/// format, or RFC 3339) in ms since the epoch.
fn receipt_time_ms(t: &str) -> Option<i64> {
    let t = t.trim();
    let (date, rest) = t.split_once([' ', 'T'])?;
    let time = rest.split([' ', 'Z', '+']).next()?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut h = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (h.next()??, h.next()??, h.next()??);
    let ms: i64 = format!("{frac:0<3}").get(..3)?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    Some(((days_from_civil(y, m, day) * 86400 + hh * 3600 + mm * 60 + ss) * 1000) + ms)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A `POST bits/transactions` body: Twitch's transaction object as
/// `onTransactionComplete` hands it to the extension.
#[derive(Debug, Clone)]
pub struct Submission {
    pub receipt: String,
    /// The buyer's display name (unsigned, shown as given).
    pub username: String,
    /// The body's own transaction id, if it names one: it must be the
    /// receipt's.
    pub transaction_id: Option<String>,
    body: Value,
}

impl Submission {
    pub fn parse(body: &Value) -> Result<Self, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "expected Twitch's transaction object {transactionId, product, userId, \
                 displayName, initiator, transactionReceipt}",
            ));
        }
        let text = |field: &str| -> Result<Option<String>, ApiError> {
            match body.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ApiError::bad_request(format!("{field} is a string"))),
            }
        };
        let receipt = text("transactionReceipt")?
            .filter(|r| !r.is_empty())
            .ok_or_else(|| {
                ApiError::bad_request("transactionReceipt (Twitch's JWT) is required")
            })?;
        if receipt.len() > crate::auth::MAX_TOKEN_BYTES {
            return Err(ApiError::bad_request("transactionReceipt is too long"));
        }
        let username = match text("displayName")? {
            Some(n) if !n.is_empty() => bounded("displayName", n)?,
            _ => String::new(),
        };
        let transaction_id = text("transactionId")?
            .map(|t| bounded("transactionId", t))
            .transpose()?;
        Ok(Submission {
            receipt,
            username,
            transaction_id,
            body: body.clone(),
        })
    }

    /// The facts as the unsigned body states them: only for the sandbox,
    /// where receipts are not verified. The user defaults to `caller_user`.
    pub fn unsigned_facts(&self, caller_user: Option<&str>) -> Result<Facts, ApiError> {
        let product: Product =
            serde_json::from_value(self.body.get("product").cloned().unwrap_or(Value::Null))
                .map_err(|_| {
                    ApiError::bad_request(
                        "product {sku, displayName, cost: {amount, type}} is required",
                    )
                })?;
        let id = self
            .transaction_id
            .clone()
            .ok_or_else(|| ApiError::bad_request("transactionId is required"))?;
        let user = match self.body.get("userId") {
            Some(Value::String(u)) if !u.is_empty() => u.clone(),
            _ => caller_user
                .map(str::to_string)
                .ok_or_else(|| ApiError::bad_request("userId is required"))?,
        };
        facts(id, user, product, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(v: Value) -> ReceiptClaims {
        serde_json::from_value(v).unwrap()
    }

    fn receipt(topic: &str, cost: i64) -> Value {
        json!({"topic": topic, "exp": 1, "data": {
            "transactionId": "tx-1", "time": "2026-12-01 10:00:00.5 +0000 UTC", "userId": "555",
            "product": {"domainId": "twitch.ext.abc", "sku": "hat", "displayName": "Hat",
                        "cost": {"amount": cost, "type": "bits"}}}})
    }

    #[test]
    fn a_receipts_facts() {
        let f = claims(receipt(RECEIPT_TOPIC, 100)).facts().unwrap();
        assert_eq!(
            (
                f.transaction_id.as_str(),
                f.user_id.as_str(),
                f.sku.as_str()
            ),
            ("tx-1", "555", "hat")
        );
        assert_eq!((f.cost, f.currency.as_str()), (100, "bits"));
        assert_eq!(f.at_ms, Some(1_796_119_200_500));
        assert!(
            claims(receipt("other", 100)).facts().is_err(),
            "another topic"
        );
        assert!(
            claims(receipt(RECEIPT_TOPIC, -1)).facts().is_err(),
            "a negative cost"
        );
    }

    #[test]
    fn receipt_times_read_in_both_formats() {
        assert_eq!(receipt_time_ms("1970-01-01 00:00:01 +0000 UTC"), Some(1000));
        assert_eq!(
            receipt_time_ms("2026-12-01T10:00:00.123Z"),
            Some(1_796_119_200_123)
        );
        assert_eq!(receipt_time_ms("yesterday"), None);
        assert_eq!(receipt_time_ms("2026-13-01 00:00:00"), None);
    }

    #[test]
    fn submissions_need_a_receipt_and_bounded_fields() {
        let ok = json!({"transactionId": "t1", "transactionReceipt": "a.b.c", "displayName": "Viewer",
                        "product": {"sku": "hat", "cost": {"amount": 10, "type": "bits"}}});
        let s = Submission::parse(&ok).unwrap();
        assert_eq!(s.username, "Viewer");
        let f = s.unsigned_facts(Some("9")).unwrap();
        assert_eq!((f.user_id.as_str(), f.cost), ("9", 10));
        for (bad, says) in [
            (json!([]), "transaction object"),
            (json!({"transactionId": "t1"}), "transactionReceipt"),
            (json!({"transactionReceipt": 5}), "is a string"),
            (json!({"transactionReceipt": "x".repeat(5000)}), "too long"),
            (
                json!({"transactionReceipt": "a", "transactionId": "x\ny"}),
                "one line",
            ),
        ] {
            let e = Submission::parse(&bad).unwrap_err();
            assert!(e.to_string().contains(says), "{bad}: {e}");
        }
        let no_product =
            Submission::parse(&json!({"transactionReceipt": "a", "transactionId": "t"})).unwrap();
        assert!(no_product.unsigned_facts(Some("9")).is_err());
    }

    #[test]
    fn a_purchase_for_games_and_for_the_books() {
        let p = Purchase {
            id: "t1".into(),
            muxy_id: "m1".into(),
            channel: "1001".into(),
            sku: "hat".into(),
            display_name: "Hat".into(),
            user_id: "555".into(),
            username: "Viewer".into(),
            cost: 100,
            currency: "bits".into(),
            timestamp: 5,
            state: State::Received,
            sandbox: false,
            details: None,
            recorded_at: 1,
        };
        let g = p.game_body();
        assert_eq!(g["displayName"], "Hat");
        assert_eq!(g["userId"], "555");
        assert_eq!(g["muxy_id"], "m1");
        assert!(p.is_outstanding() && p.matches_sku("*") && p.matches_sku("hat"));
        assert!(!p.matches_sku("cape"));
        assert_eq!(p.listing()["state"], "received");
    }
}
