//! The `purchases` function's tests, one module per concern, in one test
//! binary (each binary is a full link of the AWS SDK).

mod api;
mod crash;
mod events;
mod runtime;
