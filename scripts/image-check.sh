#!/usr/bin/env bash
# Checks the Dockerfile without a container engine: replays its stages in chroots made
# with debootstrap and proves the runtime stage has every library the binaries need.
#
#   sudo scripts/image-check.sh                  replay both stages (build + runtime)
#   sudo scripts/image-check.sh --from-build DIR skip the build stage; take the binaries
#                                                from DIR (a scripts/build.sh build dir)
#
# How it follows the Dockerfile (so the check cannot drift from it):
#   - the Dockerfile is parsed here: FROM starts a stage, WORKDIR/COPY/USER are applied,
#     every RUN line is run verbatim with `/bin/sh -c` inside the stage's chroot, and
#     EXPOSE/ENTRYPOINT/CMD/LABEL are ignored. Any other instruction (ARG, ENV, ADD, ...)
#     fails the check: teach this script about it first.
#   - `FROM debian:<suite>[-slim]` becomes a fresh `debootstrap --variant=minbase <suite>`
#     root (Debian's official images are minbase too; for -slim the image's dpkg
#     path-excludes are added). Its apt sources are the Debian mirror this machine's apt
#     already uses (read from /etc/apt/sources.list{,.d/}; IMAGE_CHECK_MIRROR overrides).
#   - the build context is the source tree filtered by .dockerignore.
# Then, as the Dockerfile's USER (`chroot --userspec`), inside the runtime root:
#   micro-registry --version, micro-sidecar --version, micro-echo --help, and ldd
#   reports no missing library. The runtime stage must be the last one (what a plain
#   `docker build .` builds). With an `etcd` stage (the `--target etcd` image), as its
#   USER: etcd --version, etcdctl version, and a one-member etcd on loopback with its
#   data in /var/lib/etcd/data answers a put and a get and stops on SIGTERM.
#
# Environment:
#   IMAGE_CHECK_CACHE  debootstrap tarballs (default: <repo>/build/image-check-cache)
#   IMAGE_CHECK_WORK   parent dir of the throw-away roots (default: $TMPDIR or /tmp)
#   IMAGE_CHECK_MIRROR Debian mirror URL (default: from this machine's apt sources)
#   IMAGE_CHECK_KEEP=1 keep the roots after the run (for debugging; mounts are still undone)
# Needs root, debootstrap, chroot (coreutils), python3, and network access to the mirror.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dockerfile=$root/Dockerfile
from_build=""
while [ $# -gt 0 ]; do
  case "$1" in
    --from-build) from_build=$(cd "${2:?--from-build needs a directory}" && pwd); shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "image-check: unknown argument $1" >&2; exit 2 ;;
  esac
done

say() { echo "image-check: $*"; }
die() { echo "image-check: FAIL: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot, mount)"
for tool in debootstrap chroot python3 mount umount; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/install-deps.sh --test installs debootstrap)"
done

cache=${IMAGE_CHECK_CACHE:-$root/build/image-check-cache}
mkdir -p "$cache"
work=$(mktemp -d "${IMAGE_CHECK_WORK:-${TMPDIR:-/tmp}}/image-check.XXXXXX")
arch=$(dpkg --print-architecture)

# ---- cleanup: undo every mount below $work, then delete it ---------------------------
unmount_all() {
  local m
  # Deepest first. /proc/self/mounts escapes spaces as \040; our paths have none.
  for m in $(awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || echo "image-check: could not unmount $m" >&2
  done
}
cleanup() {
  local rc=${1:-$?}
  unmount_all
  if awk -v w="$work/" 'index($2, w) == 1 { found = 1 } END { exit !found }' /proc/self/mounts; then
    echo "image-check: mounts remain below $work; not deleting it" >&2
  elif [ "${IMAGE_CHECK_KEEP:-0}" = 1 ]; then
    echo "image-check: kept $work"
  else
    rm -rf --one-file-system "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the Debian mirror apt uses here ---------------------------------------------------
# Prints "URI SUITE" for every enabled deb entry of /etc/apt/sources.list{,.d/*.list,.sources}.
apt_entries() {
  python3 - "$@" <<'PY'
import glob, os, re
files = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list"))
for f in files:
    if not os.path.isfile(f):
        continue
    for line in open(f, encoding="utf-8", errors="replace"):
        line = line.split("#", 1)[0].strip()
        m = re.match(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
        if m:
            print(m.group(1), m.group(2))
for f in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    text = open(f, encoding="utf-8", errors="replace").read()
    for stanza in re.split(r"\n\s*\n", text):
        fields = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            k, v = line.split(":", 1)
            fields[k.strip().lower()] = v.strip()
        if fields.get("enabled", "yes").lower() == "no" or "deb" not in fields.get("types", "").split():
            continue
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                print(uri, suite)
PY
}

# ---- the Dockerfile as a list of instructions ------------------------------------------
# One instruction per line, "KEYWORD<TAB>arguments"; continuation lines joined the way
# Docker does (backslash-newline removed; comment lines inside a continuation dropped).
parse_dockerfile() {
  python3 - "$dockerfile" <<'PY'
import sys
out, acc = [], None
for raw in open(sys.argv[1], encoding="utf-8"):
    line = raw.rstrip("\n")
    stripped = line.strip()
    if stripped.startswith("#") or (acc is None and not stripped):
        continue
    cont = line.rstrip().endswith("\\")
    piece = line.rstrip()[:-1] if cont else line
    acc = piece if acc is None else acc + piece
    if not cont:
        kw, _, rest = acc.strip().partition(" ")
        if "\t" in rest or "\n" in rest:
            sys.exit("image-check: tabs inside an instruction are not supported: " + acc)
        out.append(kw.upper() + "\t" + rest.strip())
        acc = None
if acc is not None:
    sys.exit("image-check: Dockerfile ends inside a continuation line")
print("\n".join(out))
PY
}

# ---- the build context: the source tree filtered by .dockerignore -----------------------
make_context() {
  local dest=$1
  mkdir -p "$dest"
  python3 - "$root" <<'PY' | tar -C "$root" --no-recursion --null -T - -cf - | tar -C "$dest" -xf -
import os, re, sys
top = sys.argv[1]
pats = []
ign = os.path.join(top, ".dockerignore")
if os.path.exists(ign):
    for line in open(ign, encoding="utf-8"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("!"):
            sys.exit("image-check: '!' exceptions in .dockerignore are not supported here")
        line = line.strip("/")
        rx, i = "", 0
        while i < len(line):
            if line.startswith("**/", i):
                rx += "(?:.*/)?"; i += 3
            elif line.startswith("**", i):
                rx += ".*"; i += 2
            elif line[i] == "*":
                rx += "[^/]*"; i += 1
            elif line[i] == "?":
                rx += "[^/]"; i += 1
            else:
                rx += re.escape(line[i]); i += 1
        pats.append(re.compile(rx + r"\Z"))
def ignored(rel):
    # Docker excludes a path when a pattern matches it or one of its parent directories.
    parts = rel.split("/")
    return any(p.match("/".join(parts[:n])) for n in range(1, len(parts) + 1) for p in pats)
names = []
for d, dirs, files in os.walk(top):
    reld = os.path.relpath(d, top)
    reld = "" if reld == "." else reld + "/"
    dirs[:] = sorted(x for x in dirs if not ignored(reld + x))
    for x in dirs:
        names.append(reld + x)
    for f in sorted(files):
        if not ignored(reld + f):
            names.append(reld + f)
sys.stdout.write("".join(n + "\0" for n in names))
PY
}

# ---- a fresh root for `FROM debian:<suite>[-slim]` --------------------------------------
mirror=""
declare -a apt_lines=()
pick_mirror() {
  local suite=$1 uri s
  if [ -n "${IMAGE_CHECK_MIRROR:-}" ]; then
    mirror=$IMAGE_CHECK_MIRROR
    apt_lines=("deb $mirror $suite main")
    return
  fi
  apt_lines=()
  mirror=""
  while read -r uri s; do
    case "$s" in
      "$suite") [ -n "$mirror" ] || mirror=$uri; apt_lines+=("deb $uri $s main") ;;
      "$suite"-updates|"$suite"-security|"$suite"/updates) apt_lines+=("deb $uri $s main") ;;
    esac
  done < <(apt_entries)
  [ -n "$mirror" ] || die "no '$suite' entry in this machine's apt sources; set IMAGE_CHECK_MIRROR"
}

new_root() { # new_root DIR IMAGE
  local dir=$1 image=$2 suite slim=0 tarball
  case "$image" in
    debian:*-slim) suite=${image#debian:}; suite=${suite%-slim}; slim=1 ;;
    debian:*) suite=${image#debian:} ;;
    *) die "FROM $image: only debian:<suite>[-slim] images can be replayed" ;;
  esac
  pick_mirror "$suite"
  tarball=$cache/$suite-minbase-$arch.tgz
  if [ ! -s "$tarball" ]; then
    say "downloading $suite (minbase, $arch) from $mirror into $tarball"
    debootstrap --variant=minbase --arch="$arch" --make-tarball="$tarball.part" \
      "$suite" "$work/tarball-tmp" "$mirror" >"$work/debootstrap-download.log" 2>&1 \
      || { tail -20 "$work/debootstrap-download.log" >&2; die "debootstrap --make-tarball failed"; }
    mv "$tarball.part" "$tarball"
  fi
  say "unpacking $suite into a fresh root for FROM $image"
  debootstrap --variant=minbase --arch="$arch" --unpack-tarball="$tarball" \
    "$suite" "$dir" "$mirror" >"$work/debootstrap-$(basename "$dir").log" 2>&1 \
    || { tail -20 "$work/debootstrap-$(basename "$dir").log" >&2; die "debootstrap into $dir failed"; }
  printf '%s\n' "${apt_lines[@]}" >"$dir/etc/apt/sources.list"
  if [ "$slim" = 1 ]; then
    # What debian:*-slim adds over the minbase root (debuerreotype's slimification).
    cat >"$dir/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
EOF
  fi
  # A container build resolves names with the host's resolver; so does this chroot.
  cp -L /etc/resolv.conf "$dir/etc/resolv.conf"
  cp -L /etc/hosts "$dir/etc/hosts"
  mount -t proc proc "$dir/proc"
  mkdir -p "$dir/dev/pts"
  mount -t devpts -o newinstance,ptmxmode=0666 devpts "$dir/dev/pts" 2>/dev/null || true
}

in_root() { # in_root DIR CWD USERSPEC SCRIPT   (USERSPEC "" = root)
  local dir=$1 cwd=$2 user=$3 script=$4
  local -a spec=()
  [ -z "$user" ] || spec=(--userspec="$user")
  env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb \
    chroot "${spec[@]}" "$dir" /bin/sh -c "cd \"\$1\" && eval \"\$2\"" sh "$cwd" "$script"
}

# ---- replay ----------------------------------------------------------------------------
declare -A stage_dir=()
declare -A stage_user=()
stage="" ; sdir="" ; cwd="/" ; user=""
stage_n=0
skip_stage=0
skipped_dir=""
context=""
last_dir=""

copy_in() { # copy_in SRC_ROOT DEST_ROOT CWD ARGS...   (Dockerfile COPY semantics we use)
  local sroot=$1 droot=$2 dcwd=$3; shift 3
  local -a srcs=("$@")
  local dest=${srcs[-1]}; unset 'srcs[-1]'
  case "$dest" in /*) ;; *) dest=${dcwd%/}/$dest ;; esac
  local s
  if [ ${#srcs[@]} -gt 1 ] || [[ $dest == */ ]]; then
    mkdir -p "$droot$dest"
    for s in "${srcs[@]}"; do
      if [ -d "$sroot/$s" ]; then cp -a "$sroot/$s/." "$droot$dest/"; else cp -a "$sroot/$s" "$droot$dest/"; fi
    done
  else
    s=${srcs[0]}
    if [ -d "$sroot/$s" ]; then
      mkdir -p "$droot$dest"; cp -a "$sroot/$s/." "$droot$dest/"
    else
      mkdir -p "$(dirname "$droot$dest")"; cp -a "$sroot/$s" "$droot$dest"
    fi
  fi
}

plan=$(parse_dockerfile) || die "could not parse the Dockerfile"
while IFS=$'\t' read -r kw args; do
  case "$kw" in
    FROM)
      read -r image as name <<<"$args"
      stage_n=$((stage_n + 1))
      [ "${as,,}" = as ] && stage=$name || stage=stage$stage_n
      sdir=$work/$stage; cwd=/; user=""
      stage_dir[$stage]=$sdir
      last_dir=$sdir
      if [ -n "$from_build" ] && [ "$stage_n" -eq 1 ]; then
        # --from-build: the first (build) stage is replaced by the given build directory.
        skip_stage=1
        skipped_dir=$sdir
        mkdir -p "$sdir/src"
        ln -s "$from_build" "$sdir/src/build"
        say "stage $stage: skipped, binaries from $from_build"
        continue
      fi
      skip_stage=0
      new_root "$sdir" "$image"
      ;;
    *)
      [ "$skip_stage" = 0 ] || continue
      ;;&
    WORKDIR)
      case "$args" in /*) cwd=$args ;; *) cwd=${cwd%/}/$args ;; esac
      mkdir -p "$sdir$cwd"
      ;;
    COPY)
      read -r -a words <<<"$args"
      src_root=""
      if [[ ${words[0]} == --from=* ]]; then
        from=${words[0]#--from=}
        [ -n "${stage_dir[$from]:-}" ] || die "COPY --from=$from: no such stage"
        src_root=${stage_dir[$from]}
        words=("${words[@]:1}")
      else
        [[ ${words[0]} != --* ]] || die "COPY ${words[0]} is not supported by this check"
        if [ -z "$context" ]; then
          context=$work/context
          make_context "$context"
        fi
        src_root=$context
      fi
      # COPY --from a skipped stage reads /src/build/... through the symlink to --from-build.
      if [ -n "$skipped_dir" ] && [ "$src_root" = "$skipped_dir" ]; then
        src_root=$(cd "$src_root" && pwd -P)
        for i in "${!words[@]}"; do
          [ "$i" -lt $((${#words[@]} - 1)) ] || break
          w=${words[$i]}
          [ -e "$src_root/$w" ] || die "COPY --from: $w is not in $from_build (build it first)"
          words[$i]=$(readlink -f "$src_root/$w")
          words[$i]=${words[$i]#/}
        done
        src_root=/
      fi
      say "stage $stage: COPY $(tr -s ' ' <<<"$args")"
      copy_in "$src_root" "$sdir" "$cwd" "${words[@]}" || die "COPY $args failed"
      ;;
    RUN)
      [[ $args != \[* ]] || die "RUN [exec form] is not supported by this check: $args"
      [[ $args != --* ]] || die "RUN ${args%% *} is not supported by this check"
      short=$(tr -s ' ' <<<"$args")
      say "stage $stage: RUN ${short:0:110}$([ ${#short} -gt 110 ] && echo ...)"
      in_root "$sdir" "$cwd" "" "$args" || die "stage $stage: RUN failed: $args"
      ;;
    USER)
      user=$args
      stage_user[$stage]=$args
      ;;
    EXPOSE|ENTRYPOINT|CMD|LABEL)
      ;;
    *)
      die "Dockerfile instruction $kw is not replayed by this check; teach scripts/image-check.sh"
      ;;
  esac
done <<<"$plan"

# ---- the runtime image works as its non-root user --------------------------------------
final=$last_dir
[ "$stage" = runtime ] || die "the last stage is '$stage', not runtime: a plain 'docker build .' must build the main image"
[ -n "$user" ] || die "the final stage sets no USER"
uid=${user%%:*}
[[ $uid =~ ^[0-9]+$ ]] || die "USER $user: use a numeric UID (runAsNonRoot needs one)"
[ "$uid" -ne 0 ] || die "USER is root"
[[ $user == *:* ]] || user="$user:$uid"
say "runtime stage: running the binaries as $user"
for bin in micro-registry micro-sidecar micro-echo; do
  [ -x "$final/usr/local/bin/$bin" ] || die "/usr/local/bin/$bin missing in the runtime root"
  missing=$(in_root "$final" / "" "ldd /usr/local/bin/$bin" | grep 'not found' || true)
  [ -z "$missing" ] || die "$bin: missing libraries: $missing"
done
in_root "$final" / "$user" 'id -u' | grep -qx "$uid" || die "chroot --userspec did not switch to $user"
out=$(in_root "$final" / "$user" 'micro-registry --version') || die "micro-registry --version failed"
say "micro-registry --version: $out"
out=$(in_root "$final" / "$user" 'micro-sidecar --version') || die "micro-sidecar --version failed"
say "micro-sidecar --version: $out"
in_root "$final" / "$user" 'micro-echo --help' >/dev/null || die "micro-echo --help failed"
say "micro-echo --help: ok"
in_root "$final" / "$user" 'curl --version' >/dev/null || die "curl missing in the runtime image"

# A live smoke test in the runtime root, as the image's user: registry + micro-echo +
# sidecar, the sidecar's /-/ready, a call through the sidecar's API to its own namespace
# (served by its own app), and exit 0 on SIGTERM. The chroot shares this machine's
# network, so the ports are picked here: free ones below the ephemeral range (so other
# programs' outgoing connections cannot take them meanwhile); a try whose processes die
# at start-up (a port taken after all) is retried with new ports.
pids=()
# root_cmd SCRIPT: sets the array `cmd` to run SCRIPT as $user in the runtime root. Used
# as "${cmd[@]}" & so that $! is the process itself (env, chroot and sh all exec), not a
# subshell around a function.
root_cmd() {
  cmd=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/nonexistent
       chroot --userspec="$user" "$final" /bin/sh -c "cd / && exec $1")
}
stop_smoke() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
trap 'rc=$?; stop_smoke; cleanup "$rc"' EXIT
smoke_logs() {
  local f
  for f in "$work"/smoke-*.log; do echo "--- $(basename "$f")" >&2; tail -5 "$f" >&2; done
}
smoke_try() { # returns 0 ok, 1 failed (reason in $why), 2 a process died at start-up
  local rport eport mport aport i rc
  read -r rport eport mport aport < <(python3 -c '
import random, socket
ports = []
while len(ports) < 4:
    p = random.randint(20000, 30000)
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            continue
    if p not in ports:
        ports.append(p)
print(*ports)')
  root_cmd "micro-registry --port=$rport --bind=127.0.0.1"
  "${cmd[@]}" >"$work/smoke-registry.log" 2>&1 &
  pids+=($!)
  root_cmd "micro-echo --port=$eport --bind=127.0.0.1 --name=smoke"
  "${cmd[@]}" >"$work/smoke-echo.log" 2>&1 &
  pids+=($!)
  root_cmd "env MICRO_NAMESPACE=smoke MICRO_REGISTRY=127.0.0.1:$rport MICRO_ADVERTISE_HOST=127.0.0.1 \
    MICRO_MESH_BIND=127.0.0.1 MICRO_MESH_PORT=$mport MICRO_API_PORT=$aport \
    MICRO_APP_URL=http://127.0.0.1:$eport MICRO_ROUTES=/echo micro-sidecar --shutdown-grace-ms=1000"
  "${cmd[@]}" >"$work/smoke-sidecar.log" 2>&1 &
  pids+=($!)
  if ! in_root "$final" / "$user" "i=0; until curl -fsS -o /dev/null http://127.0.0.1:$mport/-/ready; do
      i=\$((i + 1)); [ \$i -lt 150 ] || exit 1; sleep 0.1; done"; then
    for i in 0 1 2; do kill -0 "${pids[$i]}" 2>/dev/null || { why="process $i died at start-up"; return 2; }; done
    why="the sidecar never turned ready (registered)"; return 1
  fi
  in_root "$final" / "$user" "curl -fsS http://127.0.0.1:$rport/-/health" | grep -q '"ok"' \
    || { why="registry /-/health failed"; return 1; }
  out=$(in_root "$final" / "$user" "curl -fsS --max-time 10 -H 'Content-Type: application/json' \
    -d '{\"x\":1}' http://127.0.0.1:$aport/v1/call/smoke/echo") \
    || { why="a call through the sidecar failed"; return 1; }
  grep -Eq '"x" *: *1' <<<"$out" || { why="the call answered $out"; return 1; }
  say "smoke: registry, micro-echo and micro-sidecar run; call smoke/echo -> $out"
  for i in 1 2 0; do   # app, then sidecar, then registry, as kubelet stops a pod
    kill -TERM "${pids[$i]}"
    rc=0; wait "${pids[$i]}" || rc=$?
    [ "$rc" -eq 0 ] || { why="process $i exited $rc on SIGTERM"; return 1; }
  done
  pids=()
  return 0
}
for attempt in 1 2 3; do
  rc=0; smoke_try || rc=$?
  [ "$rc" -ne 0 ] || break
  smoke_logs
  stop_smoke
  [ "$rc" -eq 2 ] && [ "$attempt" -lt 3 ] || die "smoke test in the runtime root: $why"
  say "smoke: $why; retrying with other ports"
done
say "ok: the runtime image runs all three binaries as $user"

# ---- the etcd image (the Dockerfile's `etcd` target) -----------------------------------
if [ -n "${stage_dir[etcd]:-}" ]; then
  eroot=${stage_dir[etcd]}
  euser=${stage_user[etcd]:-}
  [ -n "$euser" ] || die "the etcd stage sets no USER"
  euid=${euser%%:*}
  [[ $euid =~ ^[0-9]+$ ]] || die "etcd stage: USER $euser: use a numeric UID (runAsNonRoot needs one)"
  [ "$euid" -ne 0 ] || die "etcd stage: USER is root"
  [[ $euser == *:* ]] || euser="$euser:$euid"
  [ "$euid" = "$uid" ] || die "etcd stage: USER $euser differs from the runtime's $user (the chart runs both as $uid)"
  for bin in etcd etcdctl; do
    in_root "$eroot" / "" "command -v $bin" >/dev/null || die "etcd stage: $bin missing"
  done
  [ ! -e "$eroot/usr/sbin/policy-rc.d" ] || die "etcd stage: /usr/sbin/policy-rc.d left in the image"
  out=$(in_root "$eroot" / "$euser" 'etcd --version' | head -1) || die "etcd --version failed as $euser"
  say "etcd stage: $out"
  out=$(in_root "$eroot" / "$euser" 'etcdctl version' | head -1) || die "etcdctl version failed as $euser"
  say "etcd stage: etcdctl $out"
  etcd_try() { # 0 ok, 1 failed ($why), 2 died at start-up (a port taken)
    local c p m i rc
    read -r c p m < <(python3 -c '
import random, socket
ports = []
while len(ports) < 3:
    p = random.randint(20000, 30000)
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            continue
    if p not in ports:
        ports.append(p)
print(*ports)')
    rm -rf "$eroot/var/lib/etcd/data"
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/nonexistent \
      chroot --userspec="$euser" "$eroot" /bin/sh -c "cd / && exec etcd --name=smoke --data-dir=/var/lib/etcd/data \
        --listen-client-urls=http://127.0.0.1:$c --advertise-client-urls=http://127.0.0.1:$c \
        --listen-peer-urls=http://127.0.0.1:$p --initial-advertise-peer-urls=http://127.0.0.1:$p \
        --initial-cluster=smoke=http://127.0.0.1:$p --listen-metrics-urls=http://127.0.0.1:$m \
        --auto-compaction-mode=periodic --auto-compaction-retention=1h" >"$work/smoke-etcd.log" 2>&1 &
    pids+=($!)
    i=0
    until in_root "$eroot" / "$euser" "etcdctl --endpoints=http://127.0.0.1:$c --dial-timeout=1s endpoint health" >/dev/null 2>&1; do
      kill -0 "${pids[0]}" 2>/dev/null || { why="etcd died at start-up"; return 2; }
      i=$((i + 1)); [ $i -lt 100 ] || { why="etcd never turned healthy"; return 1; }
      sleep 0.2
    done
    in_root "$eroot" / "$euser" "etcdctl --endpoints=http://127.0.0.1:$c put /micro/smoke ok" >/dev/null \
      || { why="etcdctl put failed"; return 1; }
    out=$(in_root "$eroot" / "$euser" "etcdctl --endpoints=http://127.0.0.1:$c get --print-value-only /micro/smoke") \
      || { why="etcdctl get failed"; return 1; }
    [ "$out" = ok ] || { why="etcdctl get answered '$out'"; return 1; }
    kill -TERM "${pids[0]}"
    rc=0; wait "${pids[0]}" || rc=$?
    pids=()
    # etcd cleans up on SIGTERM, then re-raises it: killed by SIGTERM (143) is its normal exit
    [ "$rc" -eq 0 ] || [ "$rc" -eq 143 ] || { why="etcd exited $rc on SIGTERM"; return 1; }
    rm -rf "$eroot/var/lib/etcd/data"
    return 0
  }
  for attempt in 1 2 3; do
    rc=0; etcd_try || rc=$?
    [ "$rc" -ne 0 ] || break
    tail -5 "$work/smoke-etcd.log" >&2
    stop_smoke
    [ "$rc" -eq 2 ] && [ "$attempt" -lt 3 ] || die "etcd smoke test in the etcd root: $why"
    say "etcd smoke: $why; retrying with other ports"
  done
  say "ok: the etcd image runs a member as $euser (data in /var/lib/etcd/data); put and get through etcdctl"
fi
