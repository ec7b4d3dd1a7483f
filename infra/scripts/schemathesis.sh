#!/usr/bin/env bash
# schemathesis (PyPI) against `medkit serve` (issue #15, item 6): every
# operation of infra/dev/openapi.json, with a valid token for each role, in
# a bounded number of examples per operation (positive and negative data).
# Checks: no server error, every status and content type documented, every
# response body valid against its schema. Exit status non-zero on a failure.
#   infra/scripts/schemathesis.sh [EXAMPLES_PER_OPERATION]   (default 10)
# Uses target/debug/medkit (built by `cargo test` or `cargo build -p medkit-dev`).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
examples="${1:-10}"
bin="${CARGO_TARGET_DIR:-target}/debug/medkit"
test -x "$bin" || { echo "no $bin: build it with cargo build -p medkit-dev" >&2; exit 1; }
st="$(bash infra/scripts/tools.sh schemathesis)/schemathesis"

# The demo extension's id (the examples in openapi.json name it), with a secret of its own.
client=medkit-demo
secret=$(python3 -c 'import base64; print(base64.b64encode(b"schemathesis-secret-not-for-production").decode())')
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log="${TMPDIR:-/tmp}/medkit-schemathesis-$port.log"
"$bin" serve --memory --port "$port" --extension "$client:$secret" >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  curl -sf -o /dev/null "$base/hello" && break
  kill -0 "$server" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done

token() { "$bin" token --client-id "$client" --secret "$secret" --channel 1001 "$@"; }
failed=0
# role, then the token's flags: a viewer who shared their identity, an
# anonymous one, and every other role.
while read -r name flags; do
  tok=$(token $flags)
  echo "== schemathesis as $name ($examples examples per operation)"
  "$st" run "$base/openapi.json" --url "$base" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    -n "$examples" --seed 15 --max-failures 20 --no-color --warnings off \
    --request-timeout 10 -H "Authorization: $client $tok" || failed=1
done <<ROLES
viewer --role viewer --user 2002
anonymous-viewer --role viewer
broadcaster --role broadcaster --user 1001
moderator --role moderator --user 3003
admin --role admin
backend --role backend
ROLES
if ! kill -0 "$server" 2>/dev/null; then
  echo "medkit serve died during the run:" >&2; tail -20 "$log" >&2; failed=1
fi
exit "$failed"
