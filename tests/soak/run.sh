#!/usr/bin/env bash
# Soak test: a registry, two providers of one namespace (one restarted over and over),
# a caller sidecar and raw peers, under mixed traffic for a while (calls, pushes, calls
# that time out and are aborted, REQUEST + ABORT pairs, API clients hanging up, raw
# peers reconnecting), then asserts that the steady sidecars' RSS and fd counts are
# flat: the mean of the end window against the mean of a baseline window taken after
# the warm-up, with a tolerance. See tests/integration/README.md.
#
#   tests/soak/run.sh [--seconds N] [BUILD_DIR]     (default 300 s, <repo>/build)
#
# test.sh's `soak` stage runs `--seconds 30`. Prints a summary; exit 1 on failure.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
seconds=300
build=$root/build
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=${2:?--seconds needs a value}; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) build=$1; shift ;;
  esac
done
case "$seconds" in ''|*[!0-9]*) echo "soak: --seconds must be a whole number" >&2; exit 2 ;; esac
[ "$seconds" -ge 20 ] || { echo "soak: --seconds must be at least 20" >&2; exit 2; }
[ -d "$root/tests/node/node_modules" ] || { echo "soak: run (cd tests/node && npm ci) first" >&2; exit 2; }
MICRO_BUILD_DIR=$build MICRO_REQUIRE_BINARIES=1 exec node "$here/soak.js" "$seconds"
