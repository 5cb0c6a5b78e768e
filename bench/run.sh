#!/usr/bin/env bash
# The benchmark suite in one command (docs/BENCHMARKS.md).
#   bench/run.sh            the full run: 3 rounds x 10 s per path and concurrency (~6 min)
#   bench/run.sh --smoke    every path for ~2 s, no assertions on numbers (CI; < 60 s)
#   bench/run.sh --help     the other options (rounds, duration, paths, --profile, ...)
# Needs: a build (BUILD_DIR, default build/; built here when a binary is missing),
# wrk, nginx, node, and tests/node's npm dependencies (installed here when missing).
# Writes bench/results/<timestamp>.json and .md and prints the markdown table.
# Exit 0 when every path worked; non-zero when one is broken (no successful requests,
# errors, non-2xx answers, a process that died) or a tool is missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}

missing=()
for tool in wrk nginx node cmake; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench: missing tools: ${missing[*]} (scripts/install-deps.sh --test installs them)" >&2
  exit 1
fi

need_build=0
for bin in registry/micro-registry sidecar/micro-sidecar examples/echo/micro-echo bench/registry-bench bench/lib-floor; do
  [ -x "$build/$bin" ] || need_build=1
done
if [ $need_build = 1 ]; then
  echo "bench: building in $build" >&2
  [ -f "$build/CMakeCache.txt" ] || cmake -S "$root" -B "$build" >/dev/null
  cmake --build "$build" -j"$(nproc)" --target micro-registry micro-sidecar micro-echo registry-bench lib-floor >/dev/null
fi

if [ ! -d "$root/tests/node/node_modules/ws" ]; then
  echo "bench: installing tests/node dependencies (npm ci)" >&2
  (cd "$root/tests/node" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

# 10,000 registry connections plus their peers need file descriptors
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

exec node "$root/bench/suite.js" --build "$build" "$@"
