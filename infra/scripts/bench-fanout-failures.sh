#!/usr/bin/env bash
# Fan-out with injected post failures on the local Lambda topology (issue
# #19): N viewers, extension-wide sends through DynamoDB Local's stream and
# the fan-out worker, a share of the Management API's posts failing; beside
# the same run with none. Starts and stops its own DynamoDB Local. Release build.
#   infra/scripts/bench-fanout-failures.sh [VIEWERS] [ROUNDS] [FAILING_PER_MILLE]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
ulimit -n "$(ulimit -Hn)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
bash infra/scripts/dynamodb-local.sh start "$port" >/dev/null
trap 'bash infra/scripts/dynamodb-local.sh stop >/dev/null 2>&1 || true' EXIT
cargo build --release -q -p medkit-dev --bin medkit --example fanout_failures_bench
target/release/examples/fanout_failures_bench --dynamodb-endpoint "http://127.0.0.1:$port" \
  --viewers "${1:-10000}" --rounds "${2:-3}" --failures "${3:-50}"
