#!/usr/bin/env bash
# GameLink polls on `medkit serve` (issue #13): N viewers vote on one poll
# while G games subscribe to it; vote → game latency (p50/p99) and votes/s
# beside the same run with no game subscribed. Release build.
#   infra/scripts/bench-polls.sh [VIEWERS] [GAMES]      e.g. 1000 1000
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
viewers="${1:-1000}"; games="${2:-1000}"
# Each game holds a descriptor on both sides.
ulimit -n "$(ulimit -Hn)"
cargo build --release -q -p medkit-dev --bin medkit --example poll_bench
exec target/release/examples/poll_bench --viewers "$viewers" --games "$games"
