//! The contract suites of the store ports, one module per port family, each
//! run against both adapters: the embedded store always, DynamoDB when
//! DynamoDB Local is configured (always in CI). One test binary for the
//! crate: each binary is a full link of the AWS SDK.

mod aggregate;
mod codes;
mod connections;
mod purchases;
mod store;
mod timers;
