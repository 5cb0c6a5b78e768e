#!/usr/bin/env bash
# Pod-level end-to-end test in Linux network namespaces, laid out like a Kubernetes node:
# a "node" namespace holding a bridge and micro-registry, and "pods" (one namespace each)
# where an echo app and its micro-sidecar share the pod's network namespace like two
# containers of one pod. See tests/netns/README.md.
#
#   sudo tests/netns/run.sh [BUILD_DIR]        (default: <repo>/build)
#
# Needs root, iproute2 (`ip netns`), curl and python3. Everything it creates (namespaces,
# veths, the bridge, processes) has a name unique to this run and is removed on exit,
# including on Ctrl-C or SIGTERM. Nothing is created in the root network namespace: the
# bridge lives in the node namespace and every veth pair is created there.
#
# Environment: NETNS_KEEP_LOGS=1 keeps the processes' logs (the path is printed);
# NETNS_VERBOSE=1 prints every step.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

case "${1:-}" in
  -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac

die() { echo "netns: $*" >&2; echo "netns: ${passed:-0} passed, $(( ${failed:-0} + 1 )) failed"; exit 1; }

# ---------------------------------------------------------------- preconditions
[ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN): sudo $0"
for tool in ip curl python3; do
  command -v "$tool" >/dev/null || die "'$tool' not found (install iproute2, curl, python3)"
done
ip netns list >/dev/null 2>&1 || die "'ip netns' is not available (iproute2 without netns support?)"

build=${1:-$root/build}
build=$(cd "$build" 2>/dev/null && pwd) || die "build directory '${1:-$root/build}' not found"
for b in registry/micro-registry sidecar/micro-sidecar examples/echo/micro-echo; do
  [ -x "$build/$b" ] || die "$build/$b not built (cmake -S . -B build && cmake --build build)"
done

# ---------------------------------------------------------------- names, addresses, knobs
P=msc$$                         # prefix of everything this run creates
NODE=$P-node                    # node namespace: bridge + registry
NET=10.244.$(( $$ % 200 + 20 )) # private /24, lives only inside our namespaces
REG_IP=$NET.1
REG_PORT=9000
REG=$REG_IP:$REG_PORT
MESH=9100
API=3500
APP=8080
HB_MS=500
RECONNECT_MS=300
LOOP_CALLS=200

declare -a CREATED_NS=()        # namespaces to delete, in creation order
declare -A PID=()               # process name -> pid (children of this shell)
declare -A POD_IP=()            # pod name -> IP
declare -A POD_NS=()            # pod name -> network namespace
passed=0 failed=0
LOGS=

log() { [ "${NETNS_VERBOSE:-0}" = 1 ] && echo "  . $*"; return 0; }
pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $(( t / 1000 )); }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  {
    for name in "${!PID[@]}"; do kill -KILL "${PID[$name]}"; done
    # Anything else still running inside our namespaces was started by this run too.
    for ns in "${CREATED_NS[@]}"; do
      for p in $(ip netns pids "$ns"); do kill -KILL "$p"; done
    done
    wait
  } 2>/dev/null
  # Deleting a namespace destroys the veth ends and the bridge inside it.
  for ((i = ${#CREATED_NS[@]} - 1; i >= 0; i--)); do
    ip netns del "${CREATED_NS[$i]}" 2>/dev/null || echo "netns: could not delete namespace ${CREATED_NS[$i]}" >&2
  done
  local left
  left=$(ip netns list 2>/dev/null | grep -c "^$P-")
  [ "$left" -eq 0 ] || echo "netns: WARNING: $left namespaces named $P-* are left" >&2
  if [ -n "$LOGS" ]; then
    if [ "${NETNS_KEEP_LOGS:-0}" = 1 ]; then echo "netns: logs kept in $LOGS"; else rm -rf "$LOGS"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "netns: interrupted"; exit 130' INT
trap 'echo "netns: terminated"; exit 143' TERM

LOGS=$(mktemp -d "${TMPDIR:-/tmp}/$P.XXXXXX") || die "cannot create a temp directory"
# Run private copies of the binaries, named after this run: the run tests one consistent
# build even if the build directory is rebuilt meanwhile, and a `pkill micro-sidecar`
# elsewhere on the machine (another developer's test) cannot kill our pods mid-run.
mkdir -p "$LOGS/bin"
REGISTRY_BIN=$LOGS/bin/$P-registry
SIDECAR_BIN=$LOGS/bin/$P-sidecar
ECHO_BIN=$LOGS/bin/$P-echo
cp "$build/registry/micro-registry" "$REGISTRY_BIN" &&
  cp "$build/sidecar/micro-sidecar" "$SIDECAR_BIN" &&
  cp "$build/examples/echo/micro-echo" "$ECHO_BIN" || die "cannot copy the binaries to $LOGS/bin"

# ---------------------------------------------------------------- helpers
# poll TIMEOUT_MS CMD...: run CMD every 50 ms until it succeeds (0) or the deadline passes (1).
poll() {
  local deadline=$(( $(now_ms) + $1 )); shift
  while :; do
    "$@" && return 0
    [ "$(now_ms)" -ge "$deadline" ] && return 1
    sleep 0.05
  done
}

# jtest EXPR: stdin is JSON, bound to `d`; exit 0 when the Python expression is true.
jtest() {
  python3 -c 'import json, sys
try:
    d = json.load(sys.stdin)
except Exception:
    sys.exit(1)
sys.exit(0 if eval(sys.argv[1]) else 1)' "$1"
}

# start NAME NETNS CMD...: run CMD in NETNS in the background, log to $LOGS/NAME.log.
# `ip netns exec` and `env` exec the command, so the pid is the program's own pid.
start() {
  local name=$1 ns=$2; shift 2
  ip netns exec "$ns" "$@" </dev/null >"$LOGS/$name.log" 2>&1 &
  PID[$name]=$!
  log "started $name (pid ${PID[$name]}) in $ns: $*"
}
# alive PID: the process exists and is not a zombie.
alive() {
  local st
  st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}
# reap NAME: wait for a child we started; its exit status goes to RC. (Not in $(...):
# a subshell cannot wait for its parent's children.)
reap() { RC=0; wait "${PID[$1]}" 2>/dev/null || RC=$?; unset "PID[$1]"; }
# sigkill NAME: SIGKILL and reap one of our processes.
sigkill() { kill -KILL "${PID[$1]}" 2>/dev/null; wait "${PID[$1]}" 2>/dev/null; unset "PID[$1]"; }

# in_pod POD CMD...: run CMD inside the pod's network namespace.
in_pod() { local ns=${POD_NS[$1]}; shift; ip netns exec "$ns" "$@"; }
# node_code URL: HTTP status seen from the node namespace (000 = no HTTP answer).
node_code() { ip netns exec "$NODE" curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1"; }
node_get() { ip netns exec "$NODE" curl -s --max-time 2 "$1"; }
registry_namespaces() { node_get "http://$REG/v1/namespaces"; }
# registry_has KEY NS: the registry lists KEY under namespace NS.
registry_has() { registry_namespaces | jtest "'$1' in d.get('$2', [])"; }
registry_lacks() { registry_namespaces | jtest "'$1' not in d.get('$2', [])"; }
# registry_forgot KEY: the registry answers and KEY is nowhere in it (cheap: no python).
registry_forgot() { local r; r=$(registry_namespaces) && [ -n "$r" ] && ! grep -qF "\"$1\"" <<<"$r"; }
ready_is() { [ "$(node_code "http://${POD_IP[$1]}:$MESH/-/ready")" = "$2" ]; }
# app_stat POD EXPR: evaluate EXPR over the pod's echo app /stats.
# by_url POD URL: how many requests for URL the pod's echo app has seen (its /stats);
# -1 when the app does not answer. grep, not python: it runs in tight polls.
by_url() {
  local s n
  s=$(in_pod "$1" curl -s --max-time 2 "http://127.0.0.1:$APP/stats") && [ -n "$s" ] || { echo -1; return; }
  n=$(grep -o "\"$2\":[0-9]*" <<<"$s" | head -n 1 | cut -d: -f2)
  echo "${n:-0}"
}
slow_count() { by_url "$1" /slow/1500; }
echo_count() { by_url "$1" /echo; }
# call POD URL BODY: POST BODY to the pod sidecar's /v1/call/URL; prints "CODE BODY".
call() {
  in_pod "$1" curl -s --max-time 15 -o "$LOGS/call.out" -w '%{http_code}' -X POST \
    -H 'Content-Type: application/json' -d "$3" "http://127.0.0.1:$API/v1/call/$2"
  printf ' %s' "$(cat "$LOGS/call.out" 2>/dev/null)"
}

dump_logs() {
  echo "---- last lines of each process log ($LOGS)"
  for f in "$LOGS"/*.log; do
    [ -s "$f" ] || continue
    echo "---- $(basename "$f")"; tail -n 25 "$f"
  done
}

# ---------------------------------------------------------------- the cluster
# make_ns NAME: a new network namespace with loopback up.
make_ns() {
  ip netns add "$1" || die "cannot create network namespace $1"
  CREATED_NS+=("$1")
  ip -n "$1" link set lo up || die "cannot bring up lo in $1"
}

# add_pod POD N: namespace $P-POD with eth0 = $NET.(10+N), wired to the node's bridge.
add_pod() {
  local pod=$1 n=$2 ns=$P-$1 ip=$NET.$((10 + $2))
  make_ns "$ns"
  ip -n "$NODE" link add "veth$n" type veth peer name eth0 netns "$ns" || die "cannot create veth for $pod"
  ip -n "$NODE" link set "veth$n" master br0 up || die "cannot attach veth$n to the bridge"
  ip -n "$ns" addr add "$ip/24" dev eth0 || die "cannot address $pod"
  ip -n "$ns" link set eth0 up || die "cannot bring up $pod eth0"
  POD_NS[$pod]=$ns POD_IP[$pod]=$ip
  log "pod $pod: netns $ns, IP $ip"
}

start_registry() {
  start registry "$NODE" "$REGISTRY_BIN" --bind "$REG_IP" --port "$REG_PORT" \
    --heartbeat-timeout-ms 2000 --sweep-interval-ms 200
}
registry_up() { [ "$(node_code "http://$REG/-/health")" = 200 ]; }

# start_app_and_sidecar POD NAMESPACE: the two "containers" of a pod. The sidecar finds
# its advertise address through POD_IP (the Downward API), not --advertise-host.
start_app_and_sidecar() {
  local pod=$1 mns=$2
  start "$pod-app" "${POD_NS[$pod]}" "$ECHO_BIN" --bind 127.0.0.1 --port "$APP" --name "$pod" --threads 2
  start "$pod-sidecar" "${POD_NS[$pod]}" env POD_IP="${POD_IP[$pod]}" "$SIDECAR_BIN" \
    --namespace "$mns" --registry "$REG" --mesh-port "$MESH" --api-port "$API" \
    --app-url "http://127.0.0.1:$APP" --route /echo \
    --heartbeat-interval-ms "$HB_MS" --reconnect-interval-ms "$RECONNECT_MS"
  # Signals in the checks go to these pids: make sure they are the programs themselves.
  is_exe() { [ "$(readlink "/proc/$1/exe")" = "$2" ]; }
  poll 2000 is_exe "${PID[$pod-app]}" "$ECHO_BIN" || die "$pod: pid ${PID[$pod-app]} is not $ECHO_BIN"
  poll 2000 is_exe "${PID[$pod-sidecar]}" "$SIDECAR_BIN" || die "$pod: pid ${PID[$pod-sidecar]} is not $SIDECAR_BIN"
}

# serve_routes POD: the app registers more routes with its sidecar through the local API.
serve_routes() {
  local pod=$1 url code
  for url in /inspect /slow/1500; do
    code=$(in_pod "$pod" curl -s -o /dev/null -w '%{http_code}' --max-time 2 -X POST \
      -H 'Content-Type: application/json' -d "{\"url\":\"$url\"}" "http://127.0.0.1:$API/v1/routes")
    case $code in 200|201) ;; *) return 1 ;; esac
  done
}

echo "netns: run $P, subnet $NET.0/24, binaries from $build"
make_ns "$NODE"
ip -n "$NODE" link add br0 type bridge || die "cannot create a bridge in $NODE"
# A fixed MAC: otherwise the bridge takes the lowest MAC of its ports and changes it
# when a pod is added, and the pods' ARP entries for the node IP go stale (connections
# to the registry then hang until ARP times out).
ip -n "$NODE" link set br0 address 02:00:0a:f4:00:01 || die "cannot set the bridge's MAC"
ip -n "$NODE" addr add "$REG_IP/24" dev br0 || die "cannot address the bridge"
ip -n "$NODE" link set br0 up || die "cannot bring up the bridge"
add_pod p1 1   # provider (echo)
add_pod p2 2   # provider (echo)
add_pod p3 3   # consumer (client)

start_registry
poll 5000 registry_up || { dump_logs; die "the registry did not come up on $REG"; }
start_app_and_sidecar p1 echo
start_app_and_sidecar p2 echo
start_app_and_sidecar p3 client
for pod in p1 p2 p3; do
  poll 10000 ready_is "$pod" 200 || { dump_logs; die "sidecar of $pod not ready on ${POD_IP[$pod]}:$MESH"; }
done
for pod in p1 p2; do
  serve_routes "$pod" || { dump_logs; die "$pod: POST /v1/routes failed"; }
done
echo "netns: cluster up: registry $REG, pods p1=${POD_IP[p1]} p2=${POD_IP[p2]} (echo), p3=${POD_IP[p3]} (client)"

key() { echo "${POD_IP[$1]}:$MESH"; }

# ================================================================ 1. calls across pods
echo "== 1. calls across pods by namespace"
expect_ns="{'echo': sorted(['$(key p1)', '$(key p2)']), 'client': ['$(key p3)']}"
registry_ok() { registry_namespaces | jtest "{k: sorted(v) for k, v in d.items()} == $expect_ns"; }
if poll 5000 registry_ok && registry_namespaces | jtest "'127.0.0.1' not in json.dumps(d)"; then
  pass "registry /v1/namespaces lists the pod IPs: $(registry_namespaces)"
else
  fail "registry /v1/namespaces: $(registry_namespaces), want $expect_ns with pod IPs, no 127.0.0.1"
fi

payload='{"msg":"hello across pods","n":42,"nested":{"a":[1,2,3]}}'
out=$(call p3 echo/echo "$payload")
if [ "${out%% *}" = 200 ] && printf '%s' "${out#* }" |
   jtest "{k: v for k, v in d.items() if k != '_correlationId'} == json.loads('''$payload''')"; then
  pass "p3 -> POST /v1/call/echo/echo returns the payload: ${out#* }"
else
  fail "p3 -> POST /v1/call/echo/echo: got '$out', want 200 and $payload"
fi

out=$(in_pod p3 curl -s --max-time 5 -X POST -H 'Content-Type: application/json' \
  -H 'X-Correlation-Id: netns-corr-1' -d '{"who":"p3"}' "http://127.0.0.1:$API/v1/call/echo/inspect")
if printf '%s' "$out" | jtest "d['caller'] == '$(key p3)' and d['correlationId'] == 'netns-corr-1' and d['body']['who'] == 'p3'"; then
  pass "the provider app sees X-Micro-Caller $(key p3) (the consumer's pod IP) and the correlation id"
else
  fail "/inspect through the mesh: got '$out', want caller $(key p3), correlationId netns-corr-1"
fi

# ================================================================ 2. probes on the pod IP
echo "== 2. probes on the pod IP, local API on loopback only"
for pod in p1 p2 p3; do
  ip=${POD_IP[$pod]}
  h=$(node_get "http://$ip:$MESH/-/health"); hc=$(node_code "http://$ip:$MESH/-/health")
  rc=$(node_code "http://$ip:$MESH/-/ready")
  if [ "$hc" = 200 ] && [ "$rc" = 200 ] && printf '%s' "$h" | jtest "d['status'] == 'ok'"; then
    pass "$pod: node -> $ip:$MESH /-/health 200, /-/ready 200"
  else
    fail "$pod: node -> $ip:$MESH /-/health $hc ($h), /-/ready $rc; want 200, 200"
  fi
  ip netns exec "$NODE" curl -s -o /dev/null --connect-timeout 2 --max-time 3 "http://$ip:$API/-/health"
  crc=$?
  local_code=$(in_pod "$pod" curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$API/v1/routes")
  if [ "$crc" = 7 ] && [ "$local_code" = 200 ]; then
    pass "$pod: local API $ip:$API refused from the node (curl exit 7), answers on 127.0.0.1:$API inside the pod"
  else
    fail "$pod: local API from the node: curl exit $crc (want 7 = refused); GET /v1/routes inside the pod: $local_code (want 200)"
  fi
  # The local API serves the same /-/health as the mesh port (docs/API.md, "Probes and metrics").
  lh=$(in_pod "$pod" curl -s --max-time 2 -w ' %{http_code}' "http://127.0.0.1:$API/-/health")
  if [ "${lh##* }" = 200 ] && printf '%s' "${lh% *}" | jtest "d['status'] == 'ok' and d['registry'] is True and 'uptime' in d"; then
    pass "$pod: GET 127.0.0.1:$API/-/health answers the health body: ${lh% *}"
  else
    fail "$pod: GET 127.0.0.1:$API/-/health answered '$lh'; want 200 {\"status\":\"ok\",\"registry\":true,\"uptime\":..}"
  fi
done

# ================================================================ 3. failover after SIGKILL
echo "== 3. SIGKILL of the provider in use: $LOOP_CALLS sequential calls, none may fail"
# Which provider is the consumer using? Its discovery caches one peer per namespace.
b1=$(echo_count p1); b2=$(echo_count p2)
call p3 echo/echo '{"probe":1}' >/dev/null
a1=$(echo_count p1); a2=$(echo_count p2)
if [ "$a1" -gt "$b1" ]; then victim=p1 survivor=p2; elif [ "$a2" -gt "$b2" ]; then victim=p2 survivor=p1; else victim=; fi
if [ -z "$victim" ]; then
  fail "could not tell which provider serves the consumer (echo counts p1 $b1->$a1, p2 $b2->$a2)"
  victim=p1 survivor=p2
else
  log "consumer uses $victim (echo counts p1 $b1->$a1, p2 $b2->$a2)"
fi
surv_before=$(echo_count "$survivor")

# The call loop runs inside the consumer pod: one curl per call, one line per call.
loop_out=$LOGS/loop.txt; : >"$loop_out"
ip netns exec "${POD_NS[p3]}" bash -c '
  for i in $(seq 1 "$1"); do
    code=$(curl -s --max-time 15 -o "$2.body" -w "%{http_code}" -X POST -H "Content-Type: application/json" \
           -d "{\"i\":$i}" "http://127.0.0.1:$3/v1/call/echo/echo")
    echo "$i $code $(cat "$2.body" 2>/dev/null)" >>"$2"
  done' loop "$LOOP_CALLS" "$loop_out" "$API" </dev/null >/dev/null 2>&1 &
loop_pid=$!
lines() { wc -l <"$loop_out"; }
poll 10000 eval '[ "$(lines)" -ge 40 ]' || fail "the call loop did not get going ($(lines) calls in 10 s)"

# A slow call in flight on the victim makes "a call in flight at the kill" deterministic.
slow_out=$LOGS/slow3.txt
victim_slow=$(slow_count "$victim")
( t0=$(now_ms)
  r=$(in_pod p3 curl -s --max-time 20 -w ' %{http_code}' -X POST -H 'Content-Type: application/json' \
      -d '{"slow":"kill"}' "http://127.0.0.1:$API/v1/call/echo/slow/1500")
  echo "$(now_ms) $t0 $r" >"$slow_out" ) &
slow_pid=$!
if ! poll 3000 eval '[ "$(slow_count "$victim")" -gt "$victim_slow" ]'; then
  fail "the slow call did not reach $victim, the provider in use (slow counts: $victim $(slow_count "$victim"), $survivor $(slow_count "$survivor"))"
fi
at_kill=$(lines); t_kill=$(now_ms)
sigkill "$victim-sidecar"; sigkill "$victim-app"
echo "  killed $victim (sidecar and app, SIGKILL) after call $at_kill of $LOOP_CALLS, with /slow/1500 in flight"
[ "$at_kill" -lt "$LOOP_CALLS" ] || fail "the loop finished before the kill; the kill proved nothing"
if poll 3000 registry_forgot "$(key "$victim")"; then
  pass "the registry dropped $victim ($(key "$victim")) $(( $(now_ms) - t_kill )) ms after the kill"
else
  fail "the registry still lists $(key "$victim") 3 s after the kill: $(registry_namespaces)"
fi

poll 60000 eval '! alive $loop_pid' || fail "the call loop did not finish in 60 s"
wait "$loop_pid" 2>/dev/null
bad=$(python3 - "$loop_out" "$LOOP_CALLS" <<'PY'
import json, sys
want = int(sys.argv[2]); seen = 0; bad = []
for line in open(sys.argv[1]):
    parts = line.rstrip("\n").split(" ", 2)
    seen += 1
    i, code, body = int(parts[0]), parts[1], parts[2] if len(parts) > 2 else ""
    try:
        ok = code == "200" and json.loads(body).get("i") == i
    except Exception:
        ok = False
    if not ok:
        bad.append(f"call {i}: {code} {body}")
if seen != want:
    bad.append(f"{seen} of {want} calls made")
print("\n".join(bad))
PY
)
if [ -z "$bad" ]; then
  pass "$LOOP_CALLS/$LOOP_CALLS calls succeeded across the SIGKILL of $victim (retries=1)"
else
  fail "calls failed across the SIGKILL of $victim: $(echo "$bad" | wc -l) problems:"; echo "$bad" | head -20 | sed 's/^/      /'
fi

surv_after=$(echo_count "$survivor")
after_kill=$(( LOOP_CALLS - at_kill ))
if [ $(( surv_after - surv_before )) -ge $(( after_kill - 1 )) ]; then
  pass "$survivor served the calls after the kill (+$(( surv_after - surv_before )) /echo, $after_kill calls after the kill)"
else
  fail "$survivor served only +$(( surv_after - surv_before )) /echo, but $after_kill calls came after the kill"
fi

wait "$slow_pid" 2>/dev/null
read -r s_end s_start s_rest <"$slow_out" 2>/dev/null || s_rest=""
s_code=${s_rest##* }; s_body=${s_rest% *}
if [ "$s_code" = 200 ] && printf '%s' "$s_body" | jtest "d['slow'] == 'kill'" && [ $(( s_end - t_kill )) -lt 2700 ]; then
  pass "the call in flight on $victim failed fast and its retry on $survivor succeeded ($(( s_end - t_kill )) ms after the kill, /slow/1500 = 1500 ms)"
else
  fail "in-flight call at the kill: '$s_rest', finished $(( ${s_end:-0} - t_kill )) ms after the kill (want 200 within 1500 ms + 1200 ms)"
fi

# ================================================================ 4. graceful shutdown
echo "== 4. SIGTERM: out of the registry before the process exits, in-flight call finishes"
# The ReplicaSet replaces the killed pod: a new pod, a new IP.
add_pod p4 4
start_app_and_sidecar p4 echo
if poll 10000 ready_is p4 200 && serve_routes p4 && poll 5000 registry_has "$(key p4)" echo; then
  pass "replacement pod p4 (${POD_IP[p4]}) is ready and registered: $(registry_namespaces)"
else
  fail "replacement pod p4 did not come up: ready $(node_code "http://${POD_IP[p4]}:$MESH/-/ready"), registry $(registry_namespaces)"
fi

term=p4 other=$survivor
before_s=$(slow_count "$survivor"); before_4=$(slow_count p4)
slow_out=$LOGS/slow4.txt
t_slow=$(now_ms)
( r=$(in_pod p3 curl -s --max-time 20 -w ' %{http_code}' -X POST -H 'Content-Type: application/json' \
      -d '{"slow":"drain"}' "http://127.0.0.1:$API/v1/call/echo/slow/1500")
  echo "$(now_ms) $r" >"$slow_out" ) &
slow_pid=$!
got_slow() { [ "$(slow_count "$survivor")" -gt "$before_s" ] || [ "$(slow_count p4)" -gt "$before_4" ]; }
if poll 3000 got_slow; then
  if [ "$(slow_count "$survivor")" -gt "$before_s" ]; then term=$survivor other=p4; else term=p4 other=$survivor; fi
  term_pid=${PID[$term-sidecar]}
  t_term=$(now_ms)
  kill -TERM "$term_pid"
  echo "  SIGTERM to the sidecar of $term (pid $term_pid), /slow/1500 in flight on it for $(( t_term - t_slow )) ms at most"

  # Each round reads the registry first and the process state after: "gone while alive".
  gone_alive() { registry_forgot "$(key "$term")" && alive "$term_pid"; }
  if poll 1400 gone_alive; then
    pass "$term left the registry $(( $(now_ms) - t_term )) ms after SIGTERM while its sidecar was still running"
  else
    fail "$term: registry $(registry_namespaces), sidecar alive: $(alive "$term_pid" && echo yes || echo no) (want gone from the registry while alive)"
  fi
  rc=$(node_code "http://${POD_IP[$term]}:$MESH/-/ready")
  if [ "$rc" = 503 ] && alive "$term_pid"; then
    pass "$term: /-/ready is 503 while it drains"
  else
    fail "$term: /-/ready while draining is '$rc' (want 503; sidecar alive: $(alive "$term_pid" && echo yes || echo no))"
  fi
  # A new call while the instance drains must not fail. The consumer may still use its
  # cached connection to the draining pod (which serves it) or go to the other provider.
  o_before=$(echo_count "$other"); t_before=$(echo_count "$term")
  out=$(call p3 echo/echo '{"during":"drain"}')
  if [ "$(echo_count "$other")" -gt "$o_before" ]; then by=$other
  elif [ "$(echo_count "$term")" -gt "$t_before" ]; then by="$term (draining)"
  else by=nobody; fi
  if [ "${out%% *}" = 200 ] && printf '%s' "${out#* }" | jtest "d['during'] == 'drain'"; then
    pass "a new call during the drain succeeded (served by $by)"
  else
    fail "a new call during the drain: '$out' (served by $by)"
  fi

  wait "$slow_pid" 2>/dev/null
  read -r s_end s_rest <"$slow_out" 2>/dev/null || s_rest=""
  s_code=${s_rest##* }; s_body=${s_rest% *}
  if [ "$s_code" = 200 ] && printf '%s' "$s_body" | jtest "d['slow'] == 'drain'"; then
    pass "the in-flight call on $term finished during the drain: 200 $s_body"
  else
    fail "the in-flight call on $term: '$s_rest' (want 200 with the payload)"
  fi
  if poll 8000 eval '! alive $term_pid'; then
    reap "$term-sidecar"; rc=$RC
    if [ "$rc" = 0 ]; then
      pass "$term's sidecar exited 0 (seen $(( $(now_ms) - t_term )) ms after SIGTERM)"
    else
      fail "$term's sidecar exited with status $rc after SIGTERM (want 0)"
    fi
  else
    fail "$term's sidecar still running 8 s after SIGTERM (shutdown grace is 5 s)"
  fi
  kill -TERM "${PID[$term-app]}" 2>/dev/null; reap "$term-app"
  log "$term app exited $RC"
else
  fail "the slow call reached no provider within 3 s"
  wait "$slow_pid" 2>/dev/null
fi

# ================================================================ 5. registry comes late
echo "== 5. a sidecar started before the registry turns ready when the registry appears"
out=$(call p3 echo/echo '{"warm":1}')   # the consumer's cached peer is now $other
kill -TERM "${PID[registry]}"
reap registry; rc=$RC
if [ "$rc" = 0 ]; then pass "the registry exited 0 on SIGTERM"; else fail "the registry exited $rc on SIGTERM (want 0)"; fi

out=$(call p3 echo/echo '{"outage":1}')
p3_health() { node_get "http://${POD_IP[p3]}:$MESH/-/health"; }
if [ "${out%% *}" = 200 ] && ready_is p3 200 && poll 3000 eval 'p3_health | jtest "d[\"registry\"] is False"'; then
  pass "registry down: calls still work through the cached peer, p3 stays ready, its /-/health says registry false"
else
  fail "registry down: call '$out', p3 /-/ready $(node_code "http://${POD_IP[p3]}:$MESH/-/ready") (want 200), /-/health $(p3_health)"
fi

add_pod p5 5
start_app_and_sidecar p5 late
answers() { [ "$(node_code "http://${POD_IP[p5]}:$MESH/-/ready")" != 000 ]; }
if poll 5000 answers; then
  t_first=$(now_ms)
  body=$(node_get "http://${POD_IP[p5]}:$MESH/-/ready")
  # Still not ready after several reconnect intervals without a registry.
  poll $(( 4 * RECONNECT_MS )) eval '! ready_is p5 503'; still=$?
  if ready_is p5 503 && [ "$still" = 1 ]; then
    pass "p5 started without a registry: /-/ready 503 for $(( $(now_ms) - t_first )) ms ($body)"
  else
    fail "p5 without a registry: /-/ready $(node_code "http://${POD_IP[p5]}:$MESH/-/ready") ($body), want 503"
  fi
else
  fail "p5's mesh port does not answer on ${POD_IP[p5]}:$MESH"
fi

start_registry
poll 5000 registry_up || fail "the registry did not come back"
t_reg=$(now_ms)
deadline=$(( 5 * RECONNECT_MS + 500 ))
if poll "$deadline" ready_is p5 200; then
  pass "p5 turned ready $(( $(now_ms) - t_reg )) ms after the registry came up (reconnect interval $RECONNECT_MS ms)"
else
  fail "p5 not ready $deadline ms after the registry came up: $(node_get "http://${POD_IP[p5]}:$MESH/-/ready")"
fi
expect_ns="{'echo': ['$(key "$other")'], 'client': ['$(key p3)'], 'late': ['$(key p5)']}"
if poll 3000 registry_ok; then
  pass "every live pod re-registered: $(registry_namespaces)"
else
  fail "after the registry restart: $(registry_namespaces), want $expect_ns"
fi
out=$(call p5 echo/echo '{"from":"p5"}')
if [ "${out%% *}" = 200 ] && printf '%s' "${out#* }" | jtest "d['from'] == 'p5'"; then
  pass "p5 -> echo works after the registry came back"
else
  fail "p5 -> echo after the registry came back: '$out'"
fi

# ================================================================ summary
[ "$failed" -gt 0 ] && dump_logs
echo "netns: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
