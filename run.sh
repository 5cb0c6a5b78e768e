#!/usr/bin/env bash
# Installs what is missing (Debian 12, as root), builds, and runs the demo mesh:
# a registry, two apps and their sidecars on loopback, with calls through both.
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps.sh
scripts/build.sh build
exec scripts/demo.sh "$@" build
