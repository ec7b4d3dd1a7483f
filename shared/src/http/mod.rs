//! The HTTP edge shared by every function's router: extractors ([`Caller`],
//! [`JsonBody`], [`QueryMap`]), responses and the error mapping, and the
//! layers every router is wrapped in ([`finish`]).
//!
//! [`Caller`]: crate::auth::Caller

mod extract;
mod response;
mod router;

pub use extract::{JsonBody, QueryMap, parse_json, parse_query};
pub use response::{json_response, ok, ok_text};
pub use router::{MAX_BODY_BYTES, cors, finish};
