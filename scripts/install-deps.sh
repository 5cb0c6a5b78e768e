#!/usr/bin/env bash
# Installs the Debian 12 packages micro-sidecar needs. Idempotent: packages that are
# already installed are skipped, and apt is not touched at all when nothing is missing.
#   scripts/install-deps.sh            build + run dependencies
#   scripts/install-deps.sh --runtime  only what the binaries need at run time
#   scripts/install-deps.sh --test     build + everything the test suite uses
set -euo pipefail

runtime=(libwebsockets17 libwebsockets-evlib-ev libev4 libmicrohttpd12 libjansson4 libyaml-0-2 libcurl4 ca-certificates)
build=(build-essential cmake pkg-config libwebsockets-dev libev-dev libmicrohttpd-dev
       libjansson-dev libyaml-dev libcmocka-dev libcurl4-openssl-dev curl)
test=(clang libclang-rt-14-dev nodejs npm iproute2 debootstrap wrk nginx-light
      unzip procps python3-yaml libhttp-parser-dev etcd-server etcd-client)

case "${1:-}" in
  --runtime) want=("${runtime[@]}") ;;
  --test)    want=("${runtime[@]}" "${build[@]}" "${test[@]}") ;;
  "")        want=("${runtime[@]}" "${build[@]}") ;;
  *) echo "usage: $0 [--runtime|--test]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  # A tool may come from elsewhere (nodejs/npm from NodeSource
  # or the like); count the command as present, not only the Debian package.
  # (kubectl is not in bookworm: scripts/install-helm.sh --kubectl fetches it.)
  case "$p" in
    nodejs)  command -v node    >/dev/null && continue ;;
    npm)     command -v npm     >/dev/null && continue ;;
    clang)   command -v clang   >/dev/null && continue ;;
  esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]} (run as root, or install them)" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
