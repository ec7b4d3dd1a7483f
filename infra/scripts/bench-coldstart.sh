#!/usr/bin/env bash
# Cold start of every function's bootstrap (x86_64, release profile) under a
# local Runtime API stub, median of N starts, beside a hello-world
# lambda_runtime function built with the same profile in the same run.
#   infra/scripts/bench-coldstart.sh [STARTS]     (default 20)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
cargo build --release -q -p medkit-coldstart -p medkit-stores -p medkit-auth -p medkit-aggregate \
  -p medkit-codes -p medkit-socket -p medkit-broadcast
exec target/release/coldstart "${1:-20}"
