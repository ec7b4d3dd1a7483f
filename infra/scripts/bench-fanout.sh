#!/usr/bin/env bash
# WebSocket fan-out on `medkit serve` (issue #5): one broadcast to N loopback
# connections, time until the last one received it, memory per idle
# connection; beside a bare axum WebSocket server writing the same frame to
# the same number of sockets, in the same run. Release build.
#   infra/scripts/bench-fanout.sh [COUNTS] [ROUNDS]     e.g. 1000,10000 5
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
counts="${1:-1000,10000}"; rounds="${2:-5}"
# Each side holds one descriptor per connection.
ulimit -n "$(ulimit -Hn)"
cargo build --release -q -p medkit-dev --bin medkit --example fanout_bench
exec target/release/examples/fanout_bench --connections "$counts" --rounds "$rounds"
