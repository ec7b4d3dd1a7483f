#!/usr/bin/env bash
# Installs the Python tools the project uses into .tools/venv (idempotent):
#   tools.sh cfn-lint | sam | cargo-lambda | moto | schemathesis
# Prints the venv's bin directory.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/.tools/venv"
[ -x "$venv/bin/pip" ] || python3 -m venv "$venv" >&2
for tool in "$@"; do
  case "$tool" in
    cfn-lint) [ -x "$venv/bin/cfn-lint" ] || "$venv/bin/pip" install -q cfn-lint >&2 ;;
    cargo-lambda) [ -x "$venv/bin/cargo-lambda" ] || "$venv/bin/pip" install -q cargo-lambda ziglang >&2 ;;
    sam) [ -x "$venv/bin/sam" ] || "$venv/bin/pip" install -q aws-sam-cli >&2 ;;
    moto) [ -x "$venv/bin/moto_server" ] || "$venv/bin/pip" install -q 'moto[server]' >&2 ;;
    # Pinned: its CLI's flags and checks change between minor versions.
    schemathesis) [ -x "$venv/bin/schemathesis" ] || "$venv/bin/pip" install -q 'schemathesis==4.32.5' >&2 ;;
    *) echo "unknown tool $tool" >&2; exit 2 ;;
  esac
done
echo "$venv/bin"
