#!/usr/bin/env bash
# Soak (issue #15, item 9): MINUTES of steady mixed load on `medkit serve`
# (embedded store on a data file, expiry capped so the sweeper's bound shows),
# with 1,000 connected sockets. Prints per-minute p99 per request kind, the
# server's resident memory and the data file's size. Release build.
#   infra/scripts/soak.sh [MINUTES] [extra soak flags...]     e.g. 10
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
minutes="${1:-10}"; shift || true
ulimit -n "$(ulimit -Hn)"
cargo build --release -q -p medkit-dev --bin medkit --example soak
exec target/release/examples/soak --minutes "$minutes" "$@"
