//! A `medkit serve` (or any server printing `medkit listening on <url>`)
//! as a child process of a benchmark: started, its URL read from its banner,
//! its output drained, killed when dropped. Shared by the examples.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `cmd` (its stdout is taken for the banner) and waits for the
    /// line naming its URL.
    pub fn spawn(cmd: &mut Command) -> Result<Server, String> {
        let mut child = cmd
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the server: {e}"))?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let base = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("medkit listening on ") {
                        break url.to_string();
                    }
                }
                _ => return Err("the server exited before listening".into()),
            }
        };
        // Keep draining: the server must never write to a closed pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Server { child, base })
    }
}

/// The `medkit` binary beside the running example
/// (target/<profile>/examples/<name> -> target/<profile>/medkit).
pub fn medkit_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = exe
        .parent()
        .and_then(|examples| examples.parent())
        .map(|profile| profile.join("medkit"))
        .ok_or("cannot locate the target directory")?;
    if !bin.exists() {
        return Err(format!(
            "{} is missing: cargo build --release -p medkit-dev",
            bin.display()
        ));
    }
    Ok(bin)
}

/// Viewer tokens of `n` distinct users (ids from 100000) on `channel`.
#[allow(dead_code)] // not every example has viewers
pub fn viewer_tokens(ext: &medkit::registry::Extension, channel: &str, n: usize) -> Vec<String> {
    use medkit::auth::{self, Role};
    (0..n)
        .map(|i| {
            let user = format!("{}", 100_000 + i);
            auth::mint(
                ext,
                auth::claims_for(Role::Viewer, channel, Some(&user), 3600),
            )
        })
        .collect()
}

/// A benchmark's own extension: a registry holding `client_id` with a fixed
/// secret derived from `(mul, add)` (each benchmark its own), and that
/// secret in base64 for the server's `--extension` flag.
#[allow(dead_code)] // not every example uses it
pub fn bench_extension(client_id: &str, mul: u8, add: u8) -> (medkit::registry::Registry, String) {
    use base64::Engine;
    let secret: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(mul).wrapping_add(add));
    let mut registry = medkit::registry::Registry::default();
    registry.add(
        medkit::ids::ClientId::parse(client_id).expect("a valid client id"),
        &secret,
    );
    (
        registry,
        base64::engine::general_purpose::STANDARD.encode(secret),
    )
}

/// The value after `--name` on the command line, or `default`.
#[allow(dead_code)] // not every example uses it
pub fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
