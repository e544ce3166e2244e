#!/usr/bin/env bash
# Idempotent installs for the benchmark suite: wrk + nginx (Debian), LiteLLM proxy in its
# own venv (benchmarks/.venv-litellm), Portkey gateway from npm (benchmarks/.portkey).
# Each part is skipped when already present; a failing part does not stop the others
# (run.py reports a target that is still missing as "not available").
# Usage: benchmarks/setup.sh [all|system|litellm|portkey]...
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
PY="${PYTHON:-python3}"
parts="${*:-all}"
want() { [[ " $parts " == *" all "* || " $parts " == *" $1 "* ]]; }
status=0

if want system; then
  need=()
  command -v wrk >/dev/null || need+=(wrk)
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
  if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" \
        || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx || status=1
      # Debian starts the packaged nginx on port 80; the suite runs its own instances.
      (service nginx stop || systemctl stop nginx || nginx -s stop) >/dev/null 2>&1 || true
    else
      echo "setup.sh: need root to apt-get install ${need[*]}" >&2; status=1
    fi
  fi
fi

if want litellm; then
  V="$HERE/.venv-litellm"
  if [ ! -x "$V/bin/litellm" ]; then
    "$PY" -m venv "$V" && "$V/bin/pip" install -q --upgrade pip \
      && "$V/bin/pip" install -q 'litellm[proxy]' || status=1
  fi
fi

if want portkey; then
  P="$HERE/.portkey"
  if [ ! -e "$P/node_modules/@portkey-ai/gateway/package.json" ]; then
    mkdir -p "$P" && (cd "$P" && { [ -f package.json ] || echo '{"name": "trioproxy-bench-portkey", "private": true}' > package.json; } \
      && npm install --no-audit --no-fund --silent @portkey-ai/gateway) || status=1
  fi
fi
exit $status
