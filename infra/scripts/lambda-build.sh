#!/usr/bin/env bash
# Builds every function's arm64 `bootstrap` with cargo-lambda (what `sam build`
# and `cargo lambda deploy` ship) and checks each against the 5 MB budget.
# Installs cargo-lambda + zig into .tools/ and the Rust target if missing.
#   infra/scripts/lambda-build.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
PATH="$(bash infra/scripts/tools.sh cargo-lambda):$PATH"
if command -v rustup >/dev/null; then
  rustup target list --installed | grep -qx aarch64-unknown-linux-gnu \
    || rustup target add aarch64-unknown-linux-gnu
fi
packages=(medkit-auth medkit-stores medkit-aggregate medkit-codes medkit-socket medkit-broadcast medkit-purchases)
cargo lambda build --release --arm64 "${packages[@]/#/-p}"
budget=5000000
status=0
printf '%-18s %12s\n' function "bootstrap (B)"
for bin in medkit-auth medkit-stores medkit-aggregate medkit-codes medkit-socket medkit-broadcast medkit-fanout medkit-timers medkit-purchases; do
  f="target/lambda/$bin/bootstrap"
  [ -f "$f" ] || { echo "$f was not built" >&2; status=1; continue; }
  size=$(stat -c %s "$f")
  printf '%-18s %12s\n' "$bin" "$size"
  if [ "$size" -gt "$budget" ]; then
    echo "$bin: $size bytes is over the $budget-byte budget" >&2
    status=1
  fi
done
exit $status
