//! The `broadcast` function's tests, one module per concern, in one test binary
//! (each binary is a full link of the AWS SDK).

mod api;
mod events;
mod relay;
mod runtime;
mod security;
