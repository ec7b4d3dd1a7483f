#!/usr/bin/env bash
# Twitch relay figures (issue #18): messages per send and their sizes, then
# REST, WebSocket and Helix latency of channel broadcasts on `medkit serve`
# with the relay off (baseline) and on (the Helix stand-in), same run.
#   infra/scripts/bench-relay.sh [BROADCASTS]     (default 90, at most 95)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
cargo build --release -q -p medkit-dev --bin medkit --example relay_bench
exec target/release/examples/relay_bench --broadcasts "${1:-90}"
