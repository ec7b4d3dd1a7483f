//! Log set-up: JSON lines in Lambda (CloudWatch Logs Insights can query
//! fields), readable lines on a terminal. Level from `RUST_LOG` (default info).

use tracing_subscriber::EnvFilter;

fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// JSON logs without ANSI colours, for Lambda.
pub fn init_json() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter())
        .with_current_span(false)
        .with_ansi(false)
        .without_time() // CloudWatch stamps every line
        .try_init();
}

/// Human-readable logs for the dev server.
pub fn init_pretty() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_target(false)
        .try_init();
}
