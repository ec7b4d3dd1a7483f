//! `medkit`: the local dev server and admin commands.
//!
//! `medkit` / `medkit serve` runs every function's router in one process on an
//! embedded store (or DynamoDB with `--dynamodb-endpoint`); `medkit token`
//! prints a token the server accepts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use base64::Engine;
use clap::{Args, Parser, Subcommand};
use medkit::app::{App, SharedApp};
use medkit::auth::{self, Role};
use medkit::delivery::Poster;
use medkit::delivery::fanout::FanoutNotifier;
use medkit::delivery::management::ManagementPoster;
use medkit::env::Env;
use medkit::expiry::Expiry;
use medkit::ids::ClientId;
use medkit::registry::Registry;
use medkit::store::Store;
use medkit::store::dynamo::{DynamoStore, Tables};
use medkit::store::embedded::{EmbeddedStore, sweep};
use medkit_broadcast::mapping::{Counters, CrashAfter, Destination, KillSwitch, Mapping, Runner};

mod codes_cli;
mod listen;
mod ws;

const DEMO_CLIENT_ID: &str = "medkit-demo";
const DEMO_CHANNEL: &str = "1001";

#[derive(Parser)]
#[command(
    name = "medkit",
    version,
    about = "MEDKit-compatible backend: dev server and admin commands"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the dev server (the default).
    Serve(ServeArgs),
    /// Print a signed token the server accepts.
    Token(TokenArgs),
    /// Game-code sets: upload a file of codes of any size, show status.
    #[command(subcommand)]
    Codes(codes_cli::CodesCommand),
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Port to listen on (0 = any free port).
    #[arg(long, env = "MEDKIT_PORT", default_value_t = 8080)]
    port: u16,
    /// Address to listen on.
    #[arg(long, env = "MEDKIT_HOST", default_value = "127.0.0.1")]
    host: String,
    /// Keep data in memory only (lost on exit).
    #[arg(long, env = "MEDKIT_MEMORY")]
    memory: bool,
    /// Where the embedded store keeps its file.
    #[arg(long, env = "MEDKIT_DATA_DIR", default_value = ".medkit")]
    data_dir: PathBuf,
    /// The embedded store's page cache, in MiB.
    #[arg(long, env = "MEDKIT_CACHE_MB", default_value_t = 64)]
    cache_mb: usize,
    /// sandbox (authtoken mints tokens) or production.
    #[arg(long = "env", env = "MEDKIT_ENV", default_value = "sandbox")]
    environment: Env,
    /// `<client_id>:<base64 secret>`; repeatable (comma-separated in the env var).
    /// Replaces the demo extension.
    #[arg(
        long = "extension",
        env = "MEDKIT_EXTENSIONS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    extensions: Vec<String>,
    /// Use DynamoDB at this URL (e.g. DynamoDB Local) instead of the embedded store.
    #[arg(long, env = "MEDKIT_DYNAMODB_ENDPOINT")]
    dynamodb_endpoint: Option<String>,
    /// Prefix of the DynamoDB table names (`<prefix>stores`, `<prefix>auth`).
    #[arg(long, env = "MEDKIT_TABLE_PREFIX", default_value = "medkit-")]
    table_prefix: String,
    /// State expiry in days after the last write.
    #[arg(long, env = "MEDKIT_STATE_TTL_DAYS", default_value_t = 30)]
    state_ttl_days: i64,
    /// Soak tests: every stored item (state, config, votes, ranks, entries,
    /// trivia) lives at most this many seconds, so the sweeper's bound on
    /// the data file can be measured in minutes. Code sets keep their 90 days.
    #[arg(long, hide = true)]
    expiry_cap_secs: Option<i64>,
    /// How broadcasts reach sockets: `direct` (in process), `api` (through
    /// this server's own Management API with the AWS SDK, as in Lambda), or
    /// `stream` (the whole AWS path: jobs queued on DynamoDB, read from the
    /// table's stream by the fan-out worker under the template's event
    /// source mapping, posted through the Management API; needs
    /// --dynamodb-endpoint).
    #[arg(long, env = "MEDKIT_FANOUT", default_value = "direct")]
    fanout: FanoutVia,
    /// Tests and benchmarks: the Management API fails this many posts in a
    /// thousand (500), as a flaky API Gateway would.
    #[arg(long, hide = true, default_value_t = 0)]
    inject_post_failures: u32,
    /// Tests: with `--fanout stream`, the first fan-out invocation to make
    /// this many posts dies right after (as one that timed out does).
    #[arg(long, hide = true)]
    inject_worker_crash_after: Option<usize>,
    /// Relay this extension's broadcasts and events to Twitch's Extension
    /// PubSub too: `<client_id>=<owner's Twitch user id>`; repeatable
    /// (comma-separated in the env var). Off by default.
    #[arg(
        long = "twitch-relay",
        env = "MEDKIT_TWITCH_RELAY",
        value_delimiter = ','
    )]
    twitch_relay: Vec<String>,
    /// Helix's base URL for the relay (default https://api.twitch.tv/helix).
    #[arg(long, env = "MEDKIT_HELIX_URL")]
    helix_url: Option<String>,
    /// Seconds a client has to send a request's headers (and an idle
    /// keep-alive connection is kept).
    #[arg(long, env = "MEDKIT_HEADER_TIMEOUT", default_value_t = 10)]
    header_timeout: u64,
    /// Seconds a request (its body included) may take before a 408.
    #[arg(long, env = "MEDKIT_REQUEST_TIMEOUT", default_value_t = 30)]
    request_timeout: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum FanoutVia {
    Direct,
    Api,
    Stream,
}

#[derive(Args)]
struct TokenArgs {
    #[arg(long)]
    client_id: String,
    /// The extension secret, base64 (as Twitch shows it).
    #[arg(long, env = "MEDKIT_SECRET", hide_env_values = true)]
    secret: String,
    /// viewer, broadcaster, moderator, admin, backend (or external).
    #[arg(long)]
    role: String,
    #[arg(long)]
    channel: String,
    /// A Twitch user id (the viewer shared identity).
    #[arg(long)]
    user: Option<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: i64,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Token(args)) => token(args),
        Some(Command::Codes(cmd)) => codes_cli::run(cmd).await,
        Some(Command::Serve(args)) => serve(args).await,
        None => serve(cli.serve).await,
    };
    if let Err(e) = result {
        eprintln!("medkit: {e}");
        std::process::exit(1);
    }
}

fn token(args: TokenArgs) -> Result<(), String> {
    let client_id = ClientId::parse(args.client_id.as_str()).map_err(|e| e.to_string())?;
    let secret = medkit::registry::decode_secret(&args.secret)
        .filter(|s| !s.is_empty())
        .ok_or("--secret is not valid base64")?;
    let role = Role::parse(&args.role).ok_or_else(|| format!("unknown role {:?}", args.role))?;
    if args.ttl <= 0 {
        return Err("--ttl must be positive".into());
    }
    let mut registry = Registry::default();
    registry.add(client_id.clone(), &secret);
    let ext = registry.get(client_id.as_str()).expect("just added");
    let claims = auth::claims_for(role, &args.channel, args.user.as_deref(), args.ttl);
    println!("{}", auth::mint(ext, claims));
    Ok(())
}

/// The demo extension's secret: kept in the data dir so tokens survive a
/// restart; fresh each run with `--memory`.
fn demo_secret(args: &ServeArgs) -> Result<Vec<u8>, String> {
    let path = args.data_dir.join("demo-extension-secret");
    if !args.memory
        && let Ok(text) = std::fs::read_to_string(&path)
        && let Some(bytes) = medkit::registry::decode_secret(text.trim())
    {
        return Ok(bytes);
    }
    let secret = medkit::random::bytes::<32>().to_vec();
    if !args.memory {
        std::fs::create_dir_all(&args.data_dir)
            .map_err(|e| format!("{}: {e}", args.data_dir.display()))?;
        write_private(
            &path,
            &base64::engine::general_purpose::STANDARD.encode(&secret),
        )?;
    }
    Ok(secret)
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    medkit::logging::init_pretty();
    if !(1..=3650).contains(&args.state_ttl_days) {
        return Err("--state-ttl-days must be within 1..=3650".into());
    }
    if args.expiry_cap_secs.is_some_and(|s| s < 1) {
        return Err("--expiry-cap-secs must be at least 1".into());
    }
    let (registry, demo) = if args.extensions.is_empty() {
        if args.environment == Env::Production {
            return Err(
                "production needs at least one --extension <client_id>:<base64 secret>".into(),
            );
        }
        let secret = demo_secret(&args)?;
        let mut reg = Registry::default();
        reg.add(ClientId::parse(DEMO_CLIENT_ID).expect("valid id"), &secret);
        (reg, Some(secret))
    } else {
        let reg = Registry::parse(args.extensions.iter().map(String::as_str))
            .map_err(|e| e.to_string())?;
        (reg, None)
    };
    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .map_err(|_| format!("--host {} is not an IP address", args.host))?;
    if args.fanout == FanoutVia::Stream && args.dynamodb_endpoint.is_none() {
        return Err("--fanout stream needs --dynamodb-endpoint (DynamoDB Local's stream)".into());
    }
    if args.inject_post_failures > 1000 {
        return Err("--inject-post-failures is per thousand (0..=1000)".into());
    }
    if args.fanout != FanoutVia::Direct && !addr.ip().is_loopback() {
        // The emulated Management API trusts its callers, as API Gateway's
        // does; it is served to loopback peers only.
        return Err("--fanout api and stream need a loopback --host".into());
    }
    if args.header_timeout == 0 || args.request_timeout == 0 {
        return Err("--header-timeout and --request-timeout must be at least 1 second".into());
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;

    match &args.dynamodb_endpoint {
        Some(url) => {
            let mut store = DynamoStore::connect(url, Tables::with_prefix(&args.table_prefix));
            store
                .ensure_tables()
                .await
                .map_err(|e| format!("DynamoDB at {url}: {e}"))?;
            let mut stream = None;
            if args.fanout == FanoutVia::Stream {
                let arn = store
                    .ensure_job_stream()
                    .await
                    .map_err(|e| format!("DynamoDB at {url}: {e}"))?;
                store = store.with_fanout_queue();
                stream = Some(StreamSource {
                    endpoint: url.clone(),
                    arn,
                });
            }
            let label = format!("DynamoDB at {url}");
            let crash_after = args.inject_worker_crash_after;
            let mapping = stream.map(|src| {
                move |app: SharedApp<DynamoStore>, poster: Arc<dyn Poster>| -> MappingStart {
                    Box::pin(stream_mapping(app, poster, src, crash_after))
                }
            });
            run(
                &args, registry, store, listener, local, demo, &label, mapping,
            )
            .await
        }
        None if args.memory => {
            let store = EmbeddedStore::in_memory();
            store.start_sweeper(sweep::PASS_INTERVAL);
            run(
                &args,
                registry,
                store,
                listener,
                local,
                demo,
                "in memory",
                NO_MAPPING,
            )
            .await
        }
        None => {
            let path = args.data_dir.join("medkit.redb");
            let store = EmbeddedStore::open_with_cache(&path, args.cache_mb << 20)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            store.start_sweeper(sweep::PASS_INTERVAL);
            let label = format!("embedded file {}", path.display());
            run(
                &args, registry, store, listener, local, demo, &label, NO_MAPPING,
            )
            .await
        }
    }
}

/// Every function's routes in one router, plus a bare route for benchmarks.
fn dev_router<S: Store>(app: SharedApp<S>, sockets: Arc<ws::Sockets>) -> Router {
    rest_router(app.clone()).merge(ws::routes(app, sockets))
}

fn rest_router<S: Store>(app: SharedApp<S>) -> Router {
    let api = medkit_auth::routes::<S>()
        .merge(medkit_stores::routes::<S>())
        .merge(medkit_aggregate::routes::<S>())
        .merge(medkit_codes::routes::<S>())
        .merge(medkit_broadcast::routes::<S>())
        .merge(medkit_purchases::routes::<S>());
    medkit::http::finish(api.with_state(app))
        .route("/hello", get(|| async { "hello" }))
        .route("/openapi.json", get(openapi))
}

/// The REST surface's OpenAPI 3.1 description (written by
/// `infra/scripts/make-openapi.py`, checked against these routes by the tests).
async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        include_str!("../openapi.json"),
    )
}

/// Where `--fanout stream` reads jobs.
struct StreamSource {
    endpoint: String,
    arn: String,
}

/// Starts the event source mapping for a store (with `--fanout stream`):
/// given the app and the Management API poster, returns what it shows.
type MappingStarter<S> = fn(SharedApp<S>, Arc<dyn Poster>) -> MappingStart;
type MappingStart =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<MappingView, String>> + Send>>;
/// What the local mapping shows: its on-failure destination and its counts.
type MappingView = (Arc<Destination>, Arc<Counters>);
const NO_MAPPING: Option<MappingStarter<EmbeddedStore>> = None;

/// Runs the fan-out worker's event source mapping on DynamoDB Local's
/// stream, with its own app (the worker function's: the same store and
/// Management API, no REST routes).
async fn stream_mapping(
    app: SharedApp<DynamoStore>,
    poster: Arc<dyn Poster>,
    src: StreamSource,
    crash_after: Option<usize>,
) -> Result<MappingView, String> {
    let destination = Arc::new(Destination::default());
    let counters = Arc::new(Counters::default());
    let kill = Arc::new(KillSwitch::default());
    let poster: Arc<dyn Poster> = match crash_after {
        Some(n) => Arc::new(CrashAfter::new(poster, n, kill.clone())),
        None => poster,
    };
    let worker = Arc::new(App {
        env: app.env,
        registry: Registry::default(),
        store: app.store.clone(),
        notifier: Arc::new(medkit::delivery::local::NoopNotifier),
        poster,
        expiry: app.expiry,
        timers: None,
        tokens: Default::default(),
        relay: app.relay.clone(),
    });
    let conf = medkit::aws::local_config(&src.endpoint);
    let runner = Runner {
        app: worker,
        streams: aws_sdk_dynamodbstreams::Client::new(&conf),
        stream_arn: src.arn,
        mapping: Mapping::TEMPLATE,
        destination: destination.clone(),
        counters: counters.clone(),
        kill,
        started_at: medkit::clock::now_secs(),
    };
    // Reading from here on: the task runs as long as the server.
    drop(
        runner
            .start()
            .await
            .map_err(|e| format!("the jobs stream: {e}"))?,
    );
    Ok((destination, counters))
}

#[allow(clippy::too_many_arguments)]
async fn run<S: Store, M>(
    args: &ServeArgs,
    registry: Registry,
    store: S,
    listener: tokio::net::TcpListener,
    local: SocketAddr,
    demo: Option<Vec<u8>>,
    store_label: &str,
    mapping: Option<M>,
) -> Result<(), String>
where
    M: FnOnce(SharedApp<S>, Arc<dyn Poster>) -> MappingStart,
{
    let sockets = Arc::new(ws::Sockets::with_faults(args.inject_post_failures));
    let management = || -> Result<Arc<dyn Poster>, String> {
        Ok(Arc::new(
            ManagementPoster::connect(&format!("http://{local}/ws")).map_err(|e| e.to_string())?,
        ))
    };
    let poster: Arc<dyn Poster> = match args.fanout {
        FanoutVia::Direct => Arc::new(ws::DirectPoster(sockets.clone())),
        FanoutVia::Api | FanoutVia::Stream => management()?,
    };
    let relay = twitch_relay(args, &registry, &store)?;
    let app = Arc::new(App {
        env: args.environment,
        registry,
        store: store.clone(),
        notifier: {
            let fanout: Arc<dyn medkit::delivery::Notifier> = Arc::new(FanoutNotifier {
                store,
                poster: poster.clone(),
                env: args.environment,
                relay: relay.clone(),
            });
            match args.fanout {
                // The stream is the queue: jobs are written in order on the request path.
                FanoutVia::Stream => fanout,
                // No queue: fan out off the request path, in order.
                FanoutVia::Direct | FanoutVia::Api => {
                    Arc::new(medkit::delivery::local::Background::start(fanout))
                }
            }
        },
        poster,
        expiry: match args.expiry_cap_secs {
            Some(cap) => Expiry::with_state_days(args.state_ttl_days).capped(cap),
            None => Expiry::with_state_days(args.state_ttl_days),
        },
        timers: None,
        tokens: Default::default(),
        relay,
    });
    let destination = match mapping {
        Some(start) => Some(start(app.clone(), management()?).await?),
        None => None,
    };
    let fanout = format!("{:?}", args.fanout).to_lowercase();
    print_banner(
        &app,
        local,
        demo.as_deref(),
        &format!("{store_label}; fan-out {fanout}"),
    );
    let mut router = dev_router(app.clone(), sockets);
    if let Some(destination) = destination {
        router = router.merge(failures_route(destination));
    }
    let timeouts = listen::Timeouts {
        header: Duration::from_secs(args.header_timeout),
        request: Duration::from_secs(args.request_timeout),
    };
    listen::serve(listener, router, timeouts).await
}

/// The Twitch relay `--twitch-relay` asks for (None: off).
fn twitch_relay<S: Store>(
    args: &ServeArgs,
    registry: &Registry,
    store: &S,
) -> Result<Option<Arc<dyn medkit::delivery::Relay>>, String> {
    use medkit::delivery::twitch::{TwitchConfig, TwitchRelay};
    let entries = args.twitch_relay.iter().map(String::as_str);
    let Some(config) = TwitchConfig::parse(entries, args.helix_url.as_deref())
        .map_err(|e| format!("--twitch-relay: {e}"))?
    else {
        return Ok(None);
    };
    let relay = TwitchRelay::new(&config, registry, store.clone())
        .map_err(|e| format!("--twitch-relay: {e}"))?
        .with_helix();
    println!(
        "  twitch relay: {} -> {}",
        config
            .owners
            .iter()
            .map(|(c, _)| c.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        config.helix_url
    );
    Ok(Some(Arc::new(relay)))
}

/// `GET /dev/fanout-failures`: what the local mapping's on-failure
/// destination holds (an SQS queue in AWS), and how many invocations it
/// made, retried and saw die; `--fanout stream` serves on loopback only.
fn failures_route((destination, counters): MappingView) -> Router {
    Router::new().route(
        "/dev/fanout-failures",
        get(move || {
            let records: Vec<serde_json::Value> = destination
                .records()
                .into_iter()
                .map(|r| {
                    serde_json::json!({
                        "reason": r.reason,
                        "sequence_number": r.sequence_number,
                        "partition_key": r.partition_key,
                        "invocations": r.invocations,
                    })
                })
                .collect();
            use std::sync::atomic::Ordering::Relaxed;
            let body = serde_json::json!({
                "failures": records,
                "invocations": counters.invocations.load(Relaxed),
                "retries": counters.retries.load(Relaxed),
                "crashed": counters.crashed.load(Relaxed),
            });
            async move { medkit::http::ok(body) }
        }),
    )
}

fn print_banner<S>(app: &App<S>, local: SocketAddr, demo: Option<&[u8]>, store_label: &str) {
    println!("medkit listening on http://{local}");
    println!("  environment: {}", app.env.as_str());
    println!("  store:       {store_label}");
    println!("  websocket:   ws://{local}/ws?client_id=<client id>&token=<jwt>");
    let Some(secret) = demo else {
        let ids: Vec<String> = app.registry.client_ids().map(|c| c.to_string()).collect();
        println!("  extensions:  {}", ids.join(", "));
        return;
    };
    let ext = app.registry.get(DEMO_CLIENT_ID).expect("demo extension");
    let mint = |role: Role, user: Option<&str>| {
        let mut claims = auth::claims_for(role, DEMO_CHANNEL, user, 24 * 3600);
        claims.allowed_stage = Some("sandbox".into());
        auth::mint(ext, claims)
    };
    println!("  demo extension (sandbox only; pass --extension to use your own):");
    println!("    client id:  {DEMO_CLIENT_ID}");
    println!(
        "    secret:     {}",
        base64::engine::general_purpose::STANDARD.encode(secret)
    );
    println!("    channel:    {DEMO_CHANNEL}");
    println!("  ready tokens (24 h), use as  Authorization: {DEMO_CLIENT_ID} <token>");
    println!("    viewer:      {}", mint(Role::Viewer, Some("2002")));
    println!(
        "    broadcaster: {}",
        mint(Role::Broadcaster, Some(DEMO_CHANNEL))
    );
}
