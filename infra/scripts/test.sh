#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs and starts what the tests
# need (DynamoDB Local from Maven Central, cfn-lint, moto and schemathesis from PyPI, the JavaScript
# client's npm packages), runs every crate's tests with the DynamoDB contract
# tests required, the JavaScript client's Node tests against `medkit serve`,
# runs schemathesis against the OpenAPI description, lints the SAM template,
# and stops what it started.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port="${MEDKIT_TEST_DYNAMODB_PORT:-$(free_port)}"
moto_pid=""
cleanup() {
  bash infra/scripts/dynamodb-local.sh stop || true
  [ -z "$moto_pid" ] || kill "$moto_pid" 2>/dev/null || true
}
trap cleanup EXIT

echo "== DynamoDB Local"
endpoint=$(bash infra/scripts/dynamodb-local.sh start "$port")
echo "running at $endpoint"

# The timers queue's adapter is tested against an SQS emulator (moto).
echo "== SQS emulator (moto)"
moto_bin=$(bash infra/scripts/tools.sh moto)
sqs_port=$(free_port)
"$moto_bin/moto_server" -H 127.0.0.1 -p "$sqs_port" > "${TMPDIR:-/tmp}/medkit-moto-$sqs_port.log" 2>&1 &
moto_pid=$!
for _ in $(seq 1 100); do
  curl -sf -o /dev/null -X POST "http://127.0.0.1:$sqs_port/moto-api/reset" && break
  kill -0 "$moto_pid" 2>/dev/null || { echo "moto_server exited" >&2; exit 1; }
  sleep 0.2
done
curl -sf -o /dev/null -X POST "http://127.0.0.1:$sqs_port/moto-api/reset" \
  || { echo "moto_server did not answer on $sqs_port" >&2; exit 1; }
echo "running at http://127.0.0.1:$sqs_port"
export MEDKIT_TEST_SQS_ENDPOINT="http://127.0.0.1:$sqs_port"
export MEDKIT_REQUIRE_SQS=1

echo "== cargo test"
export MEDKIT_TEST_DYNAMODB_ENDPOINT="$endpoint"
export MEDKIT_REQUIRE_DYNAMODB=1
export AWS_EC2_METADATA_DISABLED=true
# Every library's unit tests, every crate's integration-test binary (with the
# dev server binary's own tests), the benchmarks as smoke tests. Not
# `--all-targets`, and not `--benches`: those also link each Lambda's
# `main.rs` (no tests: `test = false`) and the examples as test binaries, each
# a full link of the AWS SDK. Clippy (`.ci/run`) still compiles every target.
cargo test --workspace --lib --tests --bench '*'

echo "== JavaScript client (official @muxy/extensions-js against medkit serve)"
# target/debug/medkit is the binary `cargo test` built for the dev server's
# own tests: the same build serves both.
bin="${CARGO_TARGET_DIR:-target}/debug/medkit"
test -x "$bin" || { echo "cargo test did not build $bin" >&2; exit 1; }
(cd clients/js && npm ci --no-audit --no-fund --loglevel=error && npm test)

echo "== OpenAPI: the description is current, and schemathesis against medkit serve"
# The description against the routers is checked by medkit-dev's tests
# (openapi.rs); here, that the file is what make-openapi.py writes, and the
# server's answers for every role against its schemas.
python3 infra/scripts/make-openapi.py --check
bash infra/scripts/schemathesis.sh

echo "== template: cfn-lint, sam validate --lint, routes and binaries"
bin=$(bash infra/scripts/tools.sh cfn-lint sam)
"$bin/cfn-lint" template.yaml
echo "cfn-lint: template.yaml ok"
SAM_CLI_TELEMETRY=0 "$bin/sam" validate --lint --region us-east-1 --template template.yaml
"$bin/python" infra/scripts/check-template.py
