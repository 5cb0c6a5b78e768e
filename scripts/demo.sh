#!/usr/bin/env bash
# The demo: a registry, two echo apps and their sidecars on loopback, and calls
# through both sidecars. Leaves the mesh running for you to try (Ctrl-C stops
# it); with --once it stops after the demo (used by the test suite).
#   scripts/demo.sh [--once] [BUILD_DIR]
set -euo pipefail
once=0
[ "${1:-}" = "--once" ] && { once=1; shift; }
root=$(cd "$(dirname "$0")/.." && pwd)
b=${1:-$root/build}
logs=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

start() { # name cmd...
  local name=$1; shift
  "$@" >"$logs/$name.log" 2>&1 &
  pids+=($!)
}
wait_for() { # url what
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "demo: $2 did not come up; its log:" >&2; cat "$logs/$3.log" >&2; exit 1
}

REG=${DEMO_REGISTRY_PORT:-9000}
echo "== starting micro-registry on 127.0.0.1:$REG"
start registry "$b/registry/micro-registry" --bind 127.0.0.1 --port "$REG"
wait_for "http://127.0.0.1:$REG/-/health" "the registry" registry

for n in 1 2; do
  ns=$([ $n = 1 ] && echo orders || echo payments)
  echo "== starting app '$ns' (micro-echo on :808$n) and its sidecar (mesh :910$n, api :350$n)"
  start "app-$ns" "$b/examples/echo/micro-echo" --port "808$n" --name "$ns"
  start "sidecar-$ns" "$b/sidecar/micro-sidecar" --namespace "$ns" --registry "127.0.0.1:$REG" \
    --advertise-host 127.0.0.1 --mesh-port "910$n" --mesh-bind 127.0.0.1 --api-port "350$n" \
    --app-url "http://127.0.0.1:808$n"
  wait_for "http://127.0.0.1:350$n/-/ready" "sidecar $ns" "sidecar-$ns"
done

show() { echo; echo "\$ $*"; "$@"; echo; }
echo; echo "== the payments app registers the routes it serves with its own sidecar"
show curl -sS -X POST http://127.0.0.1:3502/v1/routes -d '{"url":"/charge"}'
show curl -sS -X POST http://127.0.0.1:3502/v1/routes -d '{"url":"/echo"}'
show curl -sS -X POST http://127.0.0.1:3502/v1/routes -d '{"url":"/inspect"}'
echo "== the registry now knows both instances"
show curl -sS http://127.0.0.1:$REG/v1/namespaces
echo "== orders calls payments by name: orders app -> sidecar :3501 -> WebSocket -> sidecar :9102 -> payments app"
show curl -sS -i -X POST http://127.0.0.1:3501/v1/call/payments/echo -H 'Content-Type: application/json' \
  -d '{"order":42,"amount":9.99}'
echo "== the payments app saw the call with its correlation id and caller"
show curl -sS -X POST http://127.0.0.1:3501/v1/call/payments/inspect -H 'X-Correlation-Id: demo-123' -d '{"order":43}'
echo "== errors are JSON with a status: an unknown route on the provider, then an unknown namespace"
show curl -sS -X POST http://127.0.0.1:3501/v1/call/payments/refund -d '{}'
show curl -sS -X POST http://127.0.0.1:3501/v1/call/shipping/quote -d '{}'
echo "== health, as kubelet sees it on the mesh port"
show curl -sS http://127.0.0.1:9101/-/health
out=$(curl -sS -X POST http://127.0.0.1:3501/v1/call/payments/echo -d '{"check":true}')
case "$out" in
  *'"check":true'*) echo "demo: OK — a call went through both sidecars" ;;
  *) echo "demo: FAILED — unexpected answer: $out" >&2; exit 1 ;;
esac
if [ $once = 1 ]; then exit 0; fi
cat <<MSG

The mesh is running (logs in $logs). Try:
  curl -X POST localhost:3501/v1/call/payments/echo -d '{"hello":"world"}'
  curl localhost:3501/metrics
Ctrl-C stops everything.
MSG
wait
