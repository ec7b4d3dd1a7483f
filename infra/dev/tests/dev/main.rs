//! The `medkit` binary end to end: `medkit serve` started as a user starts
//! it, driven over HTTP and WebSockets. One test binary for the crate.

mod common;
mod faults;
mod gamelink;
mod lambda_path;
mod openapi;
mod realtime;
mod relay;
mod security;
mod serve;
