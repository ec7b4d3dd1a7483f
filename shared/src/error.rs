//! The errors of the domain, of the store ports and of configuration read at
//! init. No HTTP here: the edge
//! (`http::response`) maps every [`ApiError`] variant to a status and a
//! `{"reason": …}` body. Internal causes are logged here and never sent.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    RateLimited(String),
    /// The route exists, the method does not.
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    /// The request (its body) did not arrive in time.
    #[error("the request was not received in time")]
    RequestTimeout,
    /// The store did not answer or throttled us: retryable.
    #[error("the data store is unavailable, try again")]
    Unavailable,
    /// A true bug. The cause was logged where it happened.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::BadRequest(reason.into())
    }
    pub fn unauthorized(reason: impl Into<String>) -> Self {
        Self::Unauthorized(reason.into())
    }
    pub fn forbidden(reason: impl Into<String>) -> Self {
        Self::Forbidden(reason.into())
    }
    pub fn not_found(reason: impl Into<String>) -> Self {
        Self::NotFound(reason.into())
    }
    pub fn conflict(reason: impl Into<String>) -> Self {
        Self::Conflict(reason.into())
    }
    pub fn too_large(reason: impl Into<String>) -> Self {
        Self::TooLarge(reason.into())
    }
}

/// Why a store call failed. Adapters translate their own errors into these.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Network failure, throttling, timeout: the caller may retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The stored form of a value would not fit the store's item size.
    #[error("value too large to store ({0} bytes)")]
    TooLarge(usize),
    /// Optimistic concurrency gave up after repeated conflicting writers.
    #[error("too many concurrent writers")]
    Contention,
    /// Anything else: corrupt data, a bug, a misconfigured table.
    #[error("store failure: {0}")]
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "store unavailable");
                ApiError::Unavailable
            }
            StoreError::TooLarge(n) => ApiError::too_large(format!(
                "the value is too large to store ({n} bytes after compression)"
            )),
            StoreError::Contention => {
                ApiError::conflict("too many concurrent updates to this value, try again")
            }
            StoreError::Internal(cause) => {
                tracing::error!(%cause, "store failure");
                ApiError::Internal
            }
        }
    }
}

/// A variable of the environment a function (or an adapter) cannot start
/// without, missing or malformed. Never carries the value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {var} is invalid: {reason}")]
    Invalid { var: &'static str, reason: String },
}
