//! Log set-up: JSON lines in Lambda (CloudWatch Logs Insights can query
//! fields), readable lines on a terminal. Level from `RUST_LOG` (default info).

use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;

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

fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
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
    let _ = tracing_subscriber::fmt()
        .with_writer(writer)
        .json()
        .flatten_event(true)
        // The request id is a field of our own line; the runtime's span list
        // would repeat it on every line.
        .with_span_list(false)
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
