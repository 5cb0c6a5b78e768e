#!/usr/bin/env bash
# Configures and builds into a build directory.
#   scripts/build.sh [BUILD_DIR] [extra cmake -D options...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$root/build}
shift || true
cmake -S "$root" -B "$dir" -DWERROR=ON "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
