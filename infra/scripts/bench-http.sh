#!/usr/bin/env bash
# HTTP throughput of the dev server (embedded file store, loopback): GET and
# PATCH channel_state, and POST vote on ONE poll from 1000 different viewers,
# beside a bare axum "hello" route of the same binary, in the same run.
# Prints requests/s, p99 and the ratios (vote vs GET channel_state too).
#   infra/scripts/bench-http.sh [SECONDS] [CONNECTIONS]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
secs="${1:-10}"; conns="${2:-64}"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; } >&2

cargo build --release -q -p medkit-dev
bin="$root/target/release/medkit"
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
secret=$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')
RUST_LOG=warn ${BENCH_WRAP:-} "$bin" serve --port "$port" --data-dir "$work/data" --extension "bench:$secret" > "$work/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/hello" && break; sleep 0.1; done

viewer=$("$bin" token --client-id bench --secret "$secret" --role viewer --channel 42 --user 7 --ttl 3600)
caster=$("$bin" token --client-id bench --secret "$secret" --role broadcaster --channel 42 --user 42 --ttl 3600)
base="http://127.0.0.1:$port"
curl -s -o /dev/null -X POST "$base/v1/e/channel_state" -H "Authorization: bench $caster" \
  -d '{"round":3,"teams":{"red":10,"blue":12},"question":"Which team wins?","open":true}'

cat > "$work/patch.lua" <<LUA
wrk.method = "PATCH"
wrk.headers["Authorization"] = "bench $caster"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded; charset=UTF-8"
wrk.body = '{"teams":{"red":11}}'
LUA

# 1000 viewers voting on one poll, round-robin over their tokens (HS256,
# signed here: 1000 `medkit token` runs would take longer than the benchmark).
python3 - "$secret" "$work/vote.lua" "$work/redeem.lua" <<'PY'
import base64, hashlib, hmac, json, sys, time
secret, out, redeem_out = base64.b64decode(sys.argv[1]), sys.argv[2], sys.argv[3]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
tokens = []
for i in range(1000):
    claims = {"exp": int(time.time()) + 3600, "channel_id": "42", "role": "viewer",
              "opaque_user_id": f"U{i}", "user_id": str(i)}
    body = head + "." + b64(json.dumps(claims).encode())
    tokens.append(body + "." + b64(hmac.new(secret, body.encode(), hashlib.sha256).digest()))
with open(out, "w") as f:
    f.write("local tokens = {" + ",".join(f'"{t}"' for t in tokens) + "}\n")
    # Requests are formatted once up front, so the load generator spends
    # as little CPU per request as it does for the static GET runs.
    f.write("""local reqs = {}
local i = 0
init = function(args)
  for n, t in ipairs(tokens) do
    reqs[n] = wrk.format("POST", nil, {
      ["Authorization"] = "bench " .. t,
      ["Content-Type"] = "application/x-www-form-urlencoded; charset=UTF-8",
    }, '{"value":' .. (n % 7) .. '}')
  end
end
request = function()
  i = i + 1
  return reqs[(i % #reqs) + 1]
end
""")
# The same 1000 viewers redeeming codes of slot 0.
with open(out) as f:
    vote = f.read()
with open(redeem_out, "w") as f:
    f.write(vote.replace("'{\"value\":' .. (n % 7) .. '}'", "'{\"all_prizes\":0}'"))
PY

run() { # name, url, extra wrk args...
  local name=$1 url=$2; shift 2
  local out; out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency "$@" "$url")
  local rps p99
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  if echo "$out" | grep -q "Non-2xx"; then echo "$name: non-2xx responses!" >&2; echo "$out" >&2; exit 1; fi
  printf '%-28s %10s req/s   p99 %8s\n' "$name" "$rps" "$p99" >&2
  echo "$rps"
}

echo "wrk: ${secs}s, $conns connections, 2 threads, loopback" >&2
hello=$(run "GET /hello (bare axum)" "$base/hello")
get=$(run "GET channel_state" "$base/v1/e/channel_state" -H "Authorization: bench $viewer")
patch=$(run "PATCH channel_state" "$base/v1/e/channel_state" -s "$work/patch.lua")
vote=$(run "POST vote (1 poll)" "$base/v1/e/vote?id=hot" -s "$work/vote.lua")
# Codes: a set of 999,999 codes, the 1000 viewers eligible for 1000 each.
python3 -c 'import sys
with open(sys.argv[1], "w") as f:
    f.writelines("CODE-%07d\n" % i for i in range(999999))' "$work/codes.txt"
"$bin" codes upload --url "$base" --client-id bench --secret "$secret" --slot 0 --name bench "$work/codes.txt" 2>/dev/null >&2
backend=$("$bin" token --client-id bench --secret "$secret" --role backend --channel 42 --ttl 3600)
python3 -c 'import json; print(json.dumps({"users": [str(i) for i in range(1000)], "prizes": [0], "prize_limits": [1000]}))' \
  | curl -s -o /dev/null -X POST "$base/v1/e/codes/mark_from_list" -H "Authorization: bench $backend" --data-binary @-
redeem=$(run "POST codes/redeem (1 slot)" "$base/v1/e/codes/redeem" -s "$work/redeem.lua")
curl -s "$base/v1/e/codes" -H "Authorization: bench $backend" \
  | python3 -c 'import json,sys; d=json.load(sys.stdin); print("set after the run: distributed", d["distributed"][0], "remaining", d["remaining"][0])' >&2
curl -s "$base/v1/e/vote?id=hot" -H "Authorization: bench $viewer" \
  | python3 -c 'import json,sys; d=json.load(sys.stdin); print("poll after the run: count", d["count"], "sum", d["sum"])' >&2
python3 - "$hello" "$get" "$patch" "$vote" "$redeem" <<'PY' >&2
import sys
hello, get, patch, vote, redeem = map(float, sys.argv[1:])
print(f"GET channel_state / bare route   = {get/hello:.2f}  (target >= 0.60)")
print(f"PATCH channel_state / bare route = {patch/hello:.2f}")
print(f"POST vote / GET channel_state    = {vote/get:.2f}  (target >= 0.50)")
print(f"POST redeem / GET channel_state  = {redeem/get:.2f}")
PY
