#!/usr/bin/env bash
# Votes/s on one poll against DynamoDB Local: sharded sums (8 items) beside a
# single counter item, same run. Starts and stops its own DynamoDB Local.
#   infra/scripts/bench-votes-dynamodb.sh [SECONDS] [CLIENTS]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
bash infra/scripts/dynamodb-local.sh start "$port" >/dev/null
trap 'bash infra/scripts/dynamodb-local.sh stop >/dev/null 2>&1 || true' EXIT
MEDKIT_TEST_DYNAMODB_ENDPOINT="http://127.0.0.1:$port" BENCH_SECS="${1:-10}" BENCH_CLIENTS="${2:-64}" \
  cargo bench -q -p medkit --bench vote_shards
