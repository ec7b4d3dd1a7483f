//! Log set-up: JSON lines in Lambda (CloudWatch Logs Insights can query
//! fields), readable lines on a terminal. Levels from `RUST_LOG` (default
//! info): a level, and `target=level` pairs, comma-separated
//! (`warn,medkit=debug`). That is the `Targets` filter, which needs no
//! regular-expression engine (`EnvFilter`'s was ~0.4 MB of every bootstrap).

use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::filter::Targets;

static COLD: AtomicBool = AtomicBool::new(true);

/// True for the first invocation this process serves (a Lambda cold start),
/// false afterwards. Each request log line carries it as `cold_start`.
pub fn cold_start() -> bool {
    COLD.swap(false, Ordering::Relaxed)
}

/// The one log line of a Lambda invocation that is not an HTTP request
/// (WebSocket routes, stream batches); HTTP requests log through the
/// router's request layer with the same fields.
pub fn invocation(request_id: &str, route: &str, status: u16, started: std::time::Instant) {
    let cold_start = cold_start();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(request_id, route, status, latency_ms, cold_start, "request");
}

fn filter() -> Targets {
    filter_of(std::env::var("RUST_LOG").ok().as_deref())
}

/// `RUST_LOG`'s value as a filter; absent, empty or malformed: info.
fn filter_of(rust_log: Option<&str>) -> Targets {
    rust_log
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

/// JSON logs without ANSI colours, for Lambda: one object per line with
/// the event's fields at the top level (`message`, `route`, `status`,
/// `latency_ms`, `cold_start`, `request_id`, …) for Logs Insights.
pub fn init_json() {
    init_json_with(std::io::stdout);
}

/// [`init_json`] writing elsewhere (tests read their own log lines).
pub fn init_json_with<W>(writer: W)
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let logs = tracing_subscriber::fmt()
        .with_writer(writer)
        .json()
        .flatten_event(true)
        // The request id is a field of our own line; the runtime's span list
        // would repeat it on every line.
        .with_span_list(false)
        .with_current_span(false)
        .with_ansi(false)
        .without_time() // CloudWatch stamps every line
        .with_max_level(tracing::Level::TRACE) // `RUST_LOG` decides, in `install`
        .finish();
    install(logs);
}

/// Makes `logs`, filtered by `RUST_LOG`, the process's subscriber (once; a
/// second call keeps the first).
fn install(logs: impl tracing::Subscriber + Send + Sync + 'static) {
    use tracing_subscriber::layer::SubscriberExt;
    let _ = tracing::subscriber::set_global_default(logs.with(filter()));
}

/// Human-readable logs for the dev server.
pub fn init_pretty() {
    install(
        tracing_subscriber::fmt()
            .with_target(false)
            .with_max_level(tracing::Level::TRACE)
            .finish(),
    );
}

#[cfg(test)]
mod tests {
    use tracing::Level;
    use tracing_subscriber::filter::LevelFilter;

    use super::filter_of;

    #[test]
    fn rust_log_sets_levels_by_target() {
        let f = filter_of(Some("warn,medkit=debug"));
        assert!(f.would_enable("medkit::store", &Level::DEBUG));
        assert!(!f.would_enable("aws_smithy_runtime", &Level::INFO));
        assert!(f.would_enable("aws_smithy_runtime", &Level::WARN));
        for default in [None, Some(""), Some("not a =filter=")] {
            let f = filter_of(default);
            assert_eq!(f.default_level(), Some(LevelFilter::INFO), "{default:?}");
        }
    }
}
