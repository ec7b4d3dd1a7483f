//! The contract suites of the store ports, one module per port family, each
//! run against both adapters: the embedded store always, DynamoDB when
//! DynamoDB Local is configured (always in CI). One test binary for the
//! crate: each binary is a full link of the AWS SDK.

/// The contract tests of one port family, each run on the embedded store
/// and (when configured) DynamoDB Local: `name` or `name, arg` per test
/// function `name(store[, arg])`. (codes and store add tests of their own
/// to their copies.)
macro_rules! contract {
    ($($name:ident $(, $arg:expr)?);* $(;)?) => {
        mod embedded {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(EmbeddedStore::in_memory() $(, $arg)?).await;
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if let Some((s, _)) = medkit::testing::dynamo_store(stringify!($name)).await {
                        super::$name(s $(, $arg)?).await;
                    }
                }
            )*
        }
    };
}

mod aggregate;
mod codes;
mod connections;
mod purchases;
mod store;
mod timers;
