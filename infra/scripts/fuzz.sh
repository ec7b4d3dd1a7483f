#!/usr/bin/env bash
# Coverage-guided fuzzing (issue #15, item 7) of what medkit parses from
# outside: each target in infra/fuzz runs for SECONDS (default 60) under
# libFuzzer with AddressSanitizer, on nightly Rust. Prints executions and
# crashes per target; a crash's input is kept in infra/fuzz/artifacts/.
#   infra/scripts/fuzz.sh [SECONDS] [TARGET...]
# With MEDKIT_FUZZ_RUNS=N a target also stops after N executions (whichever
# comes first): `MEDKIT_FUZZ_RUNS=10000000 fuzz.sh 1800` is the issue's figure.
# Installs cargo-fuzz into .tools/cargo-fuzz on first use (a few minutes).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
fuzz=(--fuzz-dir infra/fuzz)
seconds="${1:-60}"; shift || true
tools="$root/.tools/cargo-fuzz"
if [ ! -x "$tools/bin/cargo-fuzz" ]; then
  echo "installing cargo-fuzz into $tools" >&2
  cargo install -q cargo-fuzz --locked --root "$tools" >&2
fi
export PATH="$tools/bin:$PATH"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list "${fuzz[@]}")
cargo +nightly fuzz build "${fuzz[@]}" -O >&2
printf '%-18s %14s %10s %8s %8s\n' target executions exec/s seconds crashes
failed=0
for t in "${targets[@]}"; do
  mkdir -p "infra/fuzz/corpus/$t"
  log="$(mktemp)"
  status=0
  t0=$(date +%s)
  # -rss_limit_mb: the codec's inflation cap must hold well under it.
  cargo +nightly fuzz run "${fuzz[@]}" -O "$t" "infra/fuzz/corpus/$t" -- -max_total_time="$seconds" \
    -print_final_stats=1 -rss_limit_mb=1024 ${MEDKIT_FUZZ_RUNS:+-runs="$MEDKIT_FUZZ_RUNS"} >"$log" 2>&1 || status=$?
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  per_s="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
  crashes=0
  if [ "$status" -ne 0 ]; then
    crashes=1; failed=1
    grep -E "panicked|ERROR: libFuzzer|SUMMARY" "$log" | head -5 >&2 || true
  fi
  printf '%-18s %14s %10s %8s %8s\n' "$t" "${runs:-?}" "${per_s:-?}" "$(( $(date +%s) - t0 ))" "$crashes"
  rm -f "$log"
done
exit "$failed"
