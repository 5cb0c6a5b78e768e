# micro-sidecar image: micro-registry, micro-sidecar and the micro-echo demo app in one
# image. The binary to run is chosen by the pod spec (Helm chart, deploy/), so there is
# no entrypoint wrapper: `command: ["micro-registry"]`, `["micro-sidecar"]` or
# `["micro-echo"]`. Running the image bare prints the sidecar's help.
#
#   docker build -t micro-sidecar:0.1.0 .
#   docker run --rm micro-sidecar:0.1.0 micro-registry --version
#
# A second image, the `etcd` target, is Debian's etcd-server for the registry's etcd
# store (the Helm chart's etcd StatefulSet, deploy/ha/):
#   docker build --target etcd -t micro-sidecar-etcd:0.1.0 .
# The runtime stage stays last, so a plain `docker build .` builds the main image.
#
# scripts/image-check.sh replays every RUN line of both stages in a debootstrap'd
# chroot (no container engine needed), so keep RUN lines self-contained shell: no
# heredocs, no `RUN --mount`, no `RUN [...]` exec form, and no ARG/ENV they depend on.

# ---- build stage ---------------------------------------------------------------------
FROM debian:bookworm AS build
WORKDIR /src
# Dependencies first, in their own layer, so editing the C sources does not reinstall them.
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN bash scripts/install-deps.sh
COPY . .
RUN rm -rf /src/build && bash scripts/build.sh /src/build -DBUILD_TESTING=OFF

# ---- etcd stage: its own image (--target etcd) ---------------------------------------
# Debian bookworm's etcd-server (3.4) and etcdctl, as the numeric non-root user the rest
# of the chart uses. Nothing of the build stage is needed. The policy-rc.d keeps the
# package's postinst from starting a daemon during the build; the data directory the
# pods use (/var/lib/etcd/data) is on their persistent volume.
FROM debian:bookworm-slim AS etcd
RUN printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d \
 && { ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1 || apt-get update -qq; } \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends etcd-server etcd-client >/dev/null \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d \
 && groupadd --gid 65532 micro \
 && useradd --uid 65532 --gid 65532 --no-log-init --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin micro \
 && install -d -o 65532 -g 65532 -m 0700 /var/lib/etcd
USER 65532:65532
# 2379: clients (the registry). 2380: peers. 2381: /health and /metrics (probes).
EXPOSE 2379 2380 2381
ENTRYPOINT []
CMD ["etcd", "--version"]

# ---- runtime stage -------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
COPY scripts/install-deps.sh /tmp/install-deps.sh
# Runtime libraries only, plus curl on purpose (a few MB with its libraries): the
# sidecar's local API listens on 127.0.0.1:3500 inside the pod, so
# `kubectl exec ... curl localhost:3500/...` is how people try and debug it, and the
# chart's `helm test` pods use this same image instead of pulling a second one (which
# matters on air-gapped clusters).
RUN bash /tmp/install-deps.sh --runtime \
 && { ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1 || apt-get update -qq; } \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends curl >/dev/null \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh
# A fixed numeric UID/GID (65532, the distroless "nonroot" convention) so that
# Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
# (--no-log-init: no sparse lastlog/faillog entry sized by the large UID.)
RUN groupadd --gid 65532 micro \
 && useradd --uid 65532 --gid 65532 --no-log-init --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin micro
COPY --from=build /src/build/registry/micro-registry \
                  /src/build/sidecar/micro-sidecar \
                  /src/build/examples/echo/micro-echo \
                  /usr/local/bin/
USER 65532:65532
# 9000: registry (WebSocket + HTTP). 9100: sidecar mesh (WebSocket + probes + metrics).
# 3500: sidecar local API; it binds 127.0.0.1 by default, so it is reachable only from
# inside the pod (listed for documentation).
EXPOSE 9000 9100 3500
ENTRYPOINT []
CMD ["micro-sidecar", "--help"]
