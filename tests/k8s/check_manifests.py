#!/usr/bin/env python3
"""Asserts what matters in rendered micro-sidecar manifests (helm template output or
`kubectl kustomize deploy/`).

    check_manifests.py RENDERED.yaml [key=value ...]

Expectations (all optional):
    source=helm|kustomize|parent  who rendered it (labels differ; parent = a user's chart
                                  that includes the sidecar templates)
    native=true|false             the sidecar is a native sidecar (initContainers)
    demo=true|false               the demo apps are rendered
    registry=true|false           the registry is rendered
    registry_address=HOST:PORT    what MICRO_REGISTRY must be (default: derived from the
                                  rendered registry Service)
    store=memory|etcd             the registry's store (default memory: one replica,
                                  Recreate; etcd: RollingUpdate, anti-affinity, /-/ready)
    replicas=N                    registry replicas (default 1)
    anti_affinity=preferred|required|none  the registry's pod anti-affinity with etcd
    etcd=deployed|external        etcd: the rendering has its own etcd StatefulSet
                                  (default) or points at etcd_endpoints=URL,URL
    etcd_replicas=N               members of the rendered etcd (default 3)
    etcd_tls=true|false           etcd over TLS from a mounted Secret (default false)
    tokens=none|created|existing  token wiring
    prestop=N|none                the sidecar's preStop waits N seconds / has no hook
    prestop_mode=exec|sleep       how the preStop hook waits
    tests=true|false              helm test pods are rendered
    values=FILE                   a chart values file (the chart's values.yaml, or a -f file
                                  given to the rendering): every sidecar.* and registry.*
                                  key in it that maps to a binary flag must be rendered as
                                  that flag with that value (sidecar arguments or env, the
                                  registry's config file)
    flags.NS=FLAG=V,FLAG=V        the sidecar of namespace NS has exactly these --FLAG=V
                                  arguments (per-pod settings from the include's dict)
    name=LABEL                    a name for the output lines

Prints one line per failed assertion and a closing "check_manifests[name]: N passed,
M failed"; exits 1 when any assertion failed. Needs python3-yaml.
"""
import math
import re
import sys

import yaml

LABEL_KEYS = [
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
]
OUR_COMMANDS = {"micro-registry", "micro-sidecar", "micro-echo", "sh", "etcd"}
REGISTRY_CONFIG_KEYS = {"port", "bind", "heartbeat-timeout-ms", "sweep-interval-ms",
                        "max-frame-bytes", "max-connections", "max-connections-per-address",
                        "handshake-timeout-ms", "max-assembly-bytes", "max-queued-bytes",
                        "frame-timeout-ms", "send-stall-timeout-ms",
                        "verify-peer-address", "log-level", "log-format",
                        "store", "etcd-endpoints", "etcd-prefix", "etcd-lease-ttl-ms",
                        "etcd-dial-timeout-ms", "etcd-ca-file", "etcd-cert-file", "etcd-key-file"}
ETCD_CONFIG_KEYS = {"store", "etcd-endpoints", "etcd-prefix", "etcd-lease-ttl-ms",
                    "etcd-dial-timeout-ms"}
ETCD_TLS_CONFIG_KEYS = {"etcd-ca-file", "etcd-cert-file", "etcd-key-file"}
REGISTRY_INT_CONFIG_KEYS = ["heartbeat-timeout-ms", "sweep-interval-ms", "max-frame-bytes",
                            "max-connections", "max-connections-per-address",
                            "handshake-timeout-ms", "max-assembly-bytes",
                            "max-queued-bytes", "frame-timeout-ms", "send-stall-timeout-ms"]
# Integer flags every sidecar gets as an argument (chart and deploy/).
SIDECAR_INT_FLAGS = ["request-timeout-ms", "retries", "app-timeout-ms", "shutdown-grace-ms",
                     "registry-lookup-timeout-ms", "heartbeat-interval-ms",
                     "reconnect-interval-ms", "handshake-timeout-ms",
                     "app-queue-bytes", "max-assembly-bytes", "max-queued-bytes",
                     "frame-timeout-ms", "send-stall-timeout-ms", "idle-timeout-ms",
                     "namespace-ttl-ms", "max-namespaces",
                     "breaker-cooldown-ms",
                     "inbound-rps", "inbound-burst", "outbound-rps", "outbound-burst",
                     "max-inflight", "namespace-concurrency", "connection-inflight",
                     "max-connections", "app-max-connections", "max-body-bytes"]
# Only with --breaker-policy=consecutive (docs/CIRCUIT-BREAKER.md).
SIDECAR_CONSECUTIVE_FLAGS = ["breaker-failures", "breaker-reset-ms"]
BREAKER_POLICIES = {"reference", "consecutive"}
# sidecar.* values rendered as environment variables instead of arguments.
SIDECAR_ENV_VALUES = {"meshPort": "MICRO_MESH_PORT", "meshBind": "MICRO_MESH_BIND",
                      "apiPort": "MICRO_API_PORT", "apiBind": "MICRO_API_BIND",
                      "logLevel": "MICRO_LOG_LEVEL", "logFormat": "MICRO_LOG_FORMAT"}
# sidecar.* values that are not flags of their own (or are wired differently).
SIDECAR_NOT_FLAGS = {"native", "registryAddress", "advertiseHost", "appShutdownSeconds",
                     "preStop", "extraArgs", "extraEnv", "resources", "startupProbe",
                     "livenessProbe", "readinessProbe"}
# registry.* values written to its config file (key: the flag name).
REGISTRY_CONFIG_VALUES = ["port", "bind", "heartbeatTimeoutMs", "sweepIntervalMs",
                          "maxFrameBytes", "maxConnections", "maxConnectionsPerAddress",
                          "handshakeTimeoutMs", "maxAssemblyBytes", "maxQueuedBytes",
                          "frameTimeoutMs", "sendStallTimeoutMs",
                          "verifyPeerAddress",
                          "logLevel", "logFormat"]
TOKEN_ENVS = {"MICRO_API_TOKEN", "MICRO_APP_TOKEN", "MICRO_MESH_TOKEN"}


class Checker:
    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print(f"check_manifests[{self.name}]: FAIL: {what}")
        return cond


def env_map(container):
    return {e["name"]: e for e in container.get("env") or []}


def env_value(container, name):
    e = env_map(container).get(name)
    return None if e is None else e.get("value")


def arg_flags(container):
    out = {}
    for a in container.get("args") or []:
        m = re.match(r"^--([a-z0-9-]+)=(.*)$", str(a))
        if m:
            out[m.group(1)] = m.group(2)
    return out


def arg_names(container):
    """Flag names of the --flag=value arguments, in order (repeats kept)."""
    return [m.group(1) for a in container.get("args") or []
            for m in [re.match(r"^--([a-z0-9-]+)=", str(a))] if m]


def flag_of(key):
    """The flag a camelCase value key maps to: maxBodyBytes -> max-body-bytes."""
    return re.sub(r"[A-Z]", lambda m: "-" + m.group(0).lower(), key)


def yaml_text(v):
    """A value as the chart renders it into an argument or an env value."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def pod_spec_of(doc):
    kind = doc.get("kind")
    if kind == "Pod":
        return doc.get("metadata", {}), doc.get("spec", {})
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        t = doc["spec"]["template"]
        return t.get("metadata", {}), t.get("spec", {})
    return None, None


def command_of(c):
    cmd = c.get("command") or []
    return cmd[0] if cmd else None


def probe_is(probe, path, port):
    if not probe or "httpGet" not in probe:
        return False
    return probe["httpGet"].get("path") == path and probe["httpGet"].get("port") == port


def prestop_seconds(c):
    """(mode, seconds) of a sidecar's preStop hook, or (None, None)."""
    pre = ((c.get("lifecycle") or {}).get("preStop")) or None
    if not pre:
        return None, None
    if "sleep" in pre:
        return "sleep", int(pre["sleep"]["seconds"])
    cmd = (pre.get("exec") or {}).get("command") or []
    if len(cmd) == 2 and cmd[0] == "sleep" and re.fullmatch(r"[0-9]+", str(cmd[1])):
        return "exec", int(cmd[1])
    return "other", None


def secret_files(c, pspec):
    """{path: (secret name, key)} for every file of a Secret volume mounted in c."""
    out = {}
    vols = {v["name"]: v for v in pspec.get("volumes") or []}
    for m in c.get("volumeMounts") or []:
        sec = (vols.get(m["name"]) or {}).get("secret")
        if sec:
            out[m["mountPath"].rstrip("/")] = sec.get("secretName")
    return out


def check_etcd_config(ck, exp, name, conf, c, pspec, store):
    """The registry's config file says which store, and with etcd which etcd."""
    if store == "memory":
        ck.check(not (set(conf) & (ETCD_CONFIG_KEYS | ETCD_TLS_CONFIG_KEYS)) or conf.get("store") == "memory",
                 f"{name}: no etcd keys in the config of a memory registry (got {sorted(conf)})")
        return
    ck.check(conf.get("store") == "etcd", f"{name}: config store: etcd (got {conf.get('store')!r})")
    for k in ("etcd-lease-ttl-ms", "etcd-dial-timeout-ms"):
        ck.check(isinstance(conf.get(k), int) and not isinstance(conf.get(k), bool),
                 f"{name}: config {k} is an integer (got {conf.get(k)!r})")
    ck.check(isinstance(conf.get("etcd-lease-ttl-ms"), int) and conf["etcd-lease-ttl-ms"] >= 1000,
             f"{name}: etcd-lease-ttl-ms >= 1000")
    ck.check(str(conf.get("etcd-prefix", "")).startswith("/"), f"{name}: etcd-prefix starts with /")
    urls = str(conf.get("etcd-endpoints") or "").split(",")
    tls = exp.get("etcd_tls", "false") == "true"
    scheme = "https" if tls else "http"
    ck.check(all(re.fullmatch(scheme + r"://[^\s,/]+", u) for u in urls),
             f"{name}: etcd-endpoints are {scheme}:// URLs (got {conf.get('etcd-endpoints')!r})")
    if exp.get("etcd", "deployed") == "external":
        ck.check(conf.get("etcd-endpoints") == exp.get("etcd_endpoints"),
                 f"{name}: etcd-endpoints = {exp.get('etcd_endpoints')!r} (got {conf.get('etcd-endpoints')!r})")
    files = secret_files(c, pspec)
    if tls:
        for k in sorted(ETCD_TLS_CONFIG_KEYS):
            f = str(conf.get(k) or "")
            d = f.rsplit("/", 1)[0]
            ck.check(d in files, f"{name}: {k} {f!r} is a file of a mounted Secret (mounts: {sorted(files)})")
    else:
        ck.check(not (set(conf) & ETCD_TLS_CONFIG_KEYS), f"{name}: no etcd TLS files without TLS")


def check_etcd_cluster(ck, exp, by_kind, services, store):
    """The chart's own etcd: members with stable names, volumes, compaction, probes."""
    stss = [d for d in by_kind.get("StatefulSet", [])
            if any(command_of(c) == "etcd" for c in d["spec"]["template"]["spec"].get("containers", []))]
    want = store == "etcd" and exp.get("etcd", "deployed") == "deployed"
    ck.check(len(stss) == (1 if want else 0), f"{len(stss)} etcd StatefulSets, want {1 if want else 0}")
    tls = exp.get("etcd_tls", "false") == "true"
    scheme = "https" if tls else "http"
    for sts in stss:
        name = sts["metadata"]["name"]
        spec = sts["spec"]
        pmd, pspec = pod_spec_of(sts)
        labels = pmd.get("labels") or {}
        n = spec.get("replicas")
        want_n = int(exp.get("etcd_replicas", "3"))
        ck.check(n == want_n and n % 2 == 1, f"{name}: {want_n} members, an odd number (got {n})")
        ck.check(spec.get("podManagementPolicy") == "Parallel",
                 f"{name}: podManagementPolicy Parallel (members need each other to become ready)")
        svc = services.get(spec.get("serviceName"))
        ck.check(svc is not None and svc["spec"].get("clusterIP") == "None"
                 and svc["spec"].get("publishNotReadyAddresses") is True
                 and all(labels.get(k) == v for k, v in (svc["spec"].get("selector") or {"": None}).items()),
                 f"{name}: serviceName is a headless Service over the members that publishes not-ready addresses")
        (c,) = [c for c in pspec["containers"] if command_of(c) == "etcd"]
        flags = arg_flags(c)
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        ck.check({"client", "peer", "metrics"} <= set(ports), f"{name}: client, peer and metrics ports")
        ns = sts["metadata"].get("namespace", "")
        domain = re.escape(f"{spec.get('serviceName')}.{ns}.svc") + r"(\.[a-z0-9.-]+)?" if ns else \
            re.escape(str(spec.get("serviceName")))
        members = (flags.get("initial-cluster") or "").split(",")
        ck.check(len(members) == n and all(
            re.fullmatch(re.escape(f"{name}-{i}={scheme}://{name}-{i}.") + domain + f":{ports.get('peer')}", m)
            for i, m in enumerate(members)),
            f"{name}: --initial-cluster names every member by its stable name (got {members})")
        for f, port in (("advertise-client-urls", "client"), ("initial-advertise-peer-urls", "peer")):
            ck.check(re.fullmatch(re.escape(f"{scheme}://$(POD_NAME).") + domain + f":{ports.get(port)}",
                                  flags.get(f, "")) is not None,
                     f"{name}: --{f} is the member's stable name (got {flags.get(f)!r})")
        env = env_map(c)
        ck.check(((env.get("POD_NAME") or {}).get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath")
                 == "metadata.name", f"{name}: POD_NAME from metadata.name")
        ck.check(flags.get("listen-client-urls", "").startswith(f"{scheme}://")
                 and flags.get("listen-peer-urls", "").startswith(f"{scheme}://"),
                 f"{name}: client and peer URLs are {scheme}")
        ck.check(flags.get("auto-compaction-mode") in ("periodic", "revision")
                 and bool(flags.get("auto-compaction-retention")),
                 f"{name}: auto-compaction on (mode and retention)")
        ck.check(re.fullmatch(r"[0-9]+", flags.get("quota-backend-bytes", "")) is not None,
                 f"{name}: --quota-backend-bytes set")
        if tls:
            for f in ("trusted-ca-file", "cert-file", "key-file", "peer-trusted-ca-file",
                      "peer-cert-file", "peer-key-file"):
                ck.check(flags.get(f, "").rsplit("/", 1)[0] in secret_files(c, pspec),
                         f"{name}: --{f} is a file of a mounted Secret")
            ck.check(flags.get("client-cert-auth") == "true" and flags.get("peer-client-cert-auth") == "true",
                     f"{name}: client certificates required (client and peer)")
        # The data directory is on the member's own volume.
        vcts = {v["metadata"]["name"]: v for v in spec.get("volumeClaimTemplates") or []}
        dd = flags.get("data-dir", "")
        mount = next((m for m in c.get("volumeMounts", []) if dd.startswith(m["mountPath"].rstrip("/") + "/")), None)
        ck.check(mount is not None and mount["name"] in vcts,
                 f"{name}: --data-dir {dd!r} is on a volumeClaimTemplate")
        if mount and mount["name"] in vcts:
            vs = vcts[mount["name"]]["spec"]
            ck.check(vs.get("accessModes") == ["ReadWriteOnce"]
                     and bool(((vs.get("resources") or {}).get("requests") or {}).get("storage")),
                     f"{name}: the data volume is ReadWriteOnce with a size")
        ck.check(bool((c.get("resources") or {}).get("limits", {}).get("memory")), f"{name}: a memory limit")
        ck.check(bool(c.get("livenessProbe")) and bool(c.get("readinessProbe")), f"{name}: liveness and readiness probes")
        ck.check(probe_is(c.get("readinessProbe"), "/health", "metrics"),
                 f"{name}: readinessProbe GET /health on the metrics port")
        ck.check("httpGet" not in (c.get("livenessProbe") or {}),
                 f"{name}: liveness does not depend on a leader (no /health)")
        aa = (pspec.get("affinity") or {}).get("podAntiAffinity")
        ck.check(bool(aa), f"{name}: pod anti-affinity over the members")
        pdbs = [p for p in by_kind.get("PodDisruptionBudget", [])
                if all(labels.get(k) == v for k, v in p["spec"]["selector"]["matchLabels"].items())]
        # A majority must stay: at most (n-1)/2 away (a single member has no quorum to
        # keep, and a budget of 0 would block every drain).
        ck.check(len(pdbs) == 1 and isinstance(pdbs[0]["spec"].get("maxUnavailable"), int)
                 and 1 <= pdbs[0]["spec"]["maxUnavailable"] <= max(1, (n - 1) // 2),
                 f"{name}: a PodDisruptionBudget that keeps the quorum")
        # The registry dials exactly these members.
        for d in by_kind.get("ConfigMap", []):
            data = (d.get("data") or {}).get("registry.yaml")
            if not data:
                continue
            conf = yaml.safe_load(data) or {}
            urls = str(conf.get("etcd-endpoints") or "").split(",")
            ck.check(len(urls) == n and all(
                re.fullmatch(re.escape(f"{scheme}://{name}-{i}.") + domain + f":{ports.get('client')}", u)
                for i, u in enumerate(urls)),
                f"{name}: the registry's etcd-endpoints are the members' client URLs (got {urls})")


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    path = argv[1]
    exp = {}
    for kv in argv[2:]:
        k, _, v = kv.partition("=")
        exp[k] = v
    source = exp.get("source", "helm")
    ck = Checker(exp.get("name", path))
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    ck.check(len(docs) > 0, "rendered something")

    by_kind = {}
    for d in docs:
        by_kind.setdefault(d.get("kind"), []).append(d)
        ck.check(d.get("apiVersion") and d.get("metadata", {}).get("name"),
                 f"{d.get('kind')}: apiVersion and metadata.name set")

    # ---- labels on every object of ours ------------------------------------------------
    for d in docs:
        md = d.get("metadata", {})
        labels = md.get("labels") or {}
        if source == "parent" and labels.get("app.kubernetes.io/part-of") != "micro-sidecar":
            continue  # the user's own objects
        want = LABEL_KEYS if source != "kustomize" else [
            "app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/part-of",
            "app.kubernetes.io/version"]
        missing = [k for k in want if not labels.get(k)]
        ck.check(not missing, f"{d['kind']}/{md.get('name')}: recommended labels {missing} missing")
        ck.check(labels.get("app.kubernetes.io/part-of") == "micro-sidecar",
                 f"{d['kind']}/{md.get('name')}: part-of micro-sidecar")
        if source == "kustomize":
            ck.check("namespace" not in md, f"{d['kind']}/{md.get('name')}: deploy/ is namespace-agnostic")

    # ---- the registry ------------------------------------------------------------------
    services = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}
    configmaps = {c["metadata"]["name"]: c for c in by_kind.get("ConfigMap", [])}
    registry_deps = [d for d in by_kind.get("Deployment", [])
                     if any(command_of(c) == "micro-registry"
                            for c in d["spec"]["template"]["spec"].get("containers", []))]
    want_registry = exp.get("registry", "true") == "true"
    store = exp.get("store", "memory")
    want_replicas = int(exp.get("replicas", "1"))
    ck.check(len(registry_deps) == (1 if want_registry else 0),
             f"{len(registry_deps)} registry Deployments, want {1 if want_registry else 0}")
    registry_address = exp.get("registry_address")
    registry_pod_labels = None
    registry_svc_name = None
    registry_conf = None
    for dep in registry_deps:
        name = dep["metadata"]["name"]
        spec = dep["spec"]
        pmd, pspec = pod_spec_of(dep)
        registry_pod_labels = pmd.get("labels") or {}
        ck.check(spec.get("replicas") == want_replicas, f"{name}: {want_replicas} replicas (got {spec.get('replicas')})")
        strategy = spec.get("strategy") or {}
        if store == "memory":
            ck.check(spec.get("replicas") in (0, 1), f"{name}: at most 1 replica (in-memory registry)")
            ck.check(strategy.get("type") == "Recreate",
                     f"{name}: Recreate strategy (never two registries at once)")
        else:
            ru = strategy.get("rollingUpdate") or {}
            ck.check(strategy.get("type") == "RollingUpdate" and ru.get("maxUnavailable") == 0,
                     f"{name}: RollingUpdate with maxUnavailable 0 (etcd store; got {strategy})")
            aa = (pspec.get("affinity") or {}).get("podAntiAffinity") or {}
            want_aa = exp.get("anti_affinity", "preferred")
            terms = {"preferred": [t.get("podAffinityTerm") or {} for t in
                                   aa.get("preferredDuringSchedulingIgnoredDuringExecution") or []],
                     "required": aa.get("requiredDuringSchedulingIgnoredDuringExecution") or []}
            if want_aa == "none":
                ck.check(not aa, f"{name}: no pod anti-affinity (got {aa})")
            else:
                ts = terms[want_aa]
                ck.check(any(t.get("topologyKey") == "kubernetes.io/hostname"
                             and all(registry_pod_labels.get(k) == v for k, v in
                                     ((t.get("labelSelector") or {}).get("matchLabels") or {"": None}).items())
                             for t in ts),
                         f"{name}: {want_aa} pod anti-affinity by kubernetes.io/hostname over the registry pods")
        sel = spec["selector"]["matchLabels"]
        ck.check(all(registry_pod_labels.get(k) == v for k, v in sel.items()),
                 f"{name}: selector matches the pod labels")
        (c,) = [c for c in pspec["containers"] if command_of(c) == "micro-registry"]
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        ck.check("ws" in ports, f"{name}: container port named ws")
        ck.check(probe_is(c.get("livenessProbe"), "/-/health", "ws"),
                 f"{name}: livenessProbe GET /-/health on port ws")
        ready_path = "/-/health" if store == "memory" else "/-/ready"
        ck.check(probe_is(c.get("readinessProbe"), ready_path, "ws"),
                 f"{name}: readinessProbe GET {ready_path} on port ws")
        ann = pmd.get("annotations") or {}
        ck.check(ann.get("prometheus.io/scrape") == "true", f"{name}: prometheus.io/scrape")
        ck.check(ann.get("prometheus.io/port") == str(ports.get("ws")),
                 f"{name}: prometheus.io/port is the registry port")
        ck.check(ann.get("prometheus.io/path") == "/metrics", f"{name}: prometheus.io/path")
        # --config FILE from a mounted ConfigMap, whose keys are registry flags.
        flags = arg_flags(c)
        cfg = flags.get("config")
        ck.check(cfg is not None, f"{name}: started with --config")
        if cfg:
            mount = next((m for m in c.get("volumeMounts", [])
                          if cfg.startswith(m["mountPath"].rstrip("/") + "/")), None)
            ck.check(mount is not None, f"{name}: --config {cfg} is on a mounted volume")
            if mount:
                vol = next((v for v in pspec.get("volumes", []) if v["name"] == mount["name"]), {})
                cmname = (vol.get("configMap") or {}).get("name")
                ck.check(cmname in configmaps, f"{name}: config volume is ConfigMap {cmname}")
                key = cfg[len(mount["mountPath"].rstrip("/")) + 1:]
                data = (configmaps.get(cmname) or {}).get("data", {}).get(key)
                ck.check(data is not None, f"{name}: ConfigMap {cmname} has key {key}")
                if data is not None:
                    conf = yaml.safe_load(data)
                    ck.check(isinstance(conf, dict), f"{name}: config file is a mapping")
                    if isinstance(conf, dict):
                        unknown = set(conf) - REGISTRY_CONFIG_KEYS
                        ck.check(not unknown, f"{name}: config keys {sorted(unknown)} are not registry flags")
                        ck.check(conf.get("port") == ports.get("ws"),
                                 f"{name}: config port {conf.get('port')} is the container port")
                        for k in REGISTRY_INT_CONFIG_KEYS:
                            ck.check(isinstance(conf.get(k), int) and not isinstance(conf.get(k), bool),
                                     f"{name}: config {k} is an integer (got {conf.get(k)!r})")
                        registry_conf = conf
                        check_etcd_config(ck, exp, name, conf, c, pspec, store)
        # The Service in front of it.
        svc = next((s for s in services.values()
                    if s["spec"].get("selector")
                    and all(registry_pod_labels.get(k) == v for k, v in s["spec"]["selector"].items())),
                   None)
        ck.check(svc is not None, f"{name}: a Service selects the registry pods")
        if svc:
            registry_svc_name = svc["metadata"]["name"]
            sp = svc["spec"]["ports"]
            ck.check(len(sp) == 1 and sp[0].get("name") == "ws" and sp[0].get("targetPort") == "ws"
                     and sp[0].get("port") == ports.get("ws"),
                     f"{svc['metadata']['name']}: one port named ws -> targetPort ws")
            ns = svc["metadata"].get("namespace")
            if registry_address is None:
                if ns:
                    registry_address = re.compile(
                        re.escape(f"{svc['metadata']['name']}.{ns}.svc") + r"(\.[a-z0-9.-]+)?"
                        + re.escape(f":{sp[0]['port']}"))
                else:
                    registry_address = f"{svc['metadata']['name']}:{sp[0]['port']}"
        # PodDisruptionBudget.
        pdbs = [p for p in by_kind.get("PodDisruptionBudget", [])
                if all(registry_pod_labels.get(k) == v for k, v in p["spec"]["selector"]["matchLabels"].items())]
        ck.check(len(pdbs) == 1, f"one PodDisruptionBudget for the registry (got {len(pdbs)})")
        for pdb in pdbs:
            ck.check(pdb["apiVersion"] == "policy/v1", "PodDisruptionBudget is policy/v1")
            ps = pdb["spec"]
            ck.check(("minAvailable" in ps) != ("maxUnavailable" in ps),
                     "PodDisruptionBudget sets exactly one of minAvailable/maxUnavailable")
            ck.check(ps.get("minAvailable") != 1 and ps.get("minAvailable") != "100%",
                     "PodDisruptionBudget does not block every drain of the single registry")
            sel = ps["selector"]["matchLabels"]
            ck.check(all(registry_pod_labels.get(k) == v for k, v in sel.items()),
                     "PodDisruptionBudget selects the registry pods")

    check_etcd_cluster(ck, exp, by_kind, services, store)

    # ---- every pod of ours: security context, service links ----------------------------
    pods = []
    for d in docs:
        pmd, pspec = pod_spec_of(d)
        if pspec is None:
            continue
        pods.append((d, pmd, pspec))
        name = f"{d['kind']}/{d['metadata']['name']}"
        ours = [c for c in (pspec.get("initContainers") or []) + pspec.get("containers", [])
                if command_of(c) in OUR_COMMANDS]
        if source != "parent":
            ck.check(pspec.get("enableServiceLinks") is False,
                     f"{name}: enableServiceLinks false (no MICRO_REGISTRY_PORT=tcp://... from a Service)")
            ck.check(pspec.get("automountServiceAccountToken") is False,
                     f"{name}: no service account token mounted")
        for c in ours:
            sc = c.get("securityContext") or {}
            cn = f"{name}:{c['name']}"
            ck.check(sc.get("runAsNonRoot") is True, f"{cn}: runAsNonRoot")
            ck.check(sc.get("runAsUser") == 65532, f"{cn}: runAsUser 65532")
            ck.check(sc.get("readOnlyRootFilesystem") is True, f"{cn}: readOnlyRootFilesystem")
            ck.check(sc.get("allowPrivilegeEscalation") is False, f"{cn}: allowPrivilegeEscalation false")
            ck.check("ALL" in ((sc.get("capabilities") or {}).get("drop") or []), f"{cn}: capabilities drop ALL")
            ck.check((sc.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
                     f"{cn}: seccompProfile RuntimeDefault")
            ck.check(bool((c.get("resources") or {}).get("requests")), f"{cn}: resource requests set")
        if d["kind"] == "Deployment":
            sel = d["spec"]["selector"]["matchLabels"]
            ck.check(all((pmd.get("labels") or {}).get(k) == v for k, v in sel.items()),
                     f"{name}: selector matches the pod labels")

    # ---- sidecars ----------------------------------------------------------------------
    native = exp.get("native", "true") == "true"
    sidecars = []
    for d, pmd, pspec in pods:
        name = f"{d['kind']}/{d['metadata']['name']}"
        inits = [c for c in (pspec.get("initContainers") or []) if command_of(c) == "micro-sidecar"]
        regular = [c for c in pspec.get("containers", []) if command_of(c) == "micro-sidecar"]
        if not inits and not regular:
            continue
        ck.check(len(inits) + len(regular) == 1, f"{name}: exactly one sidecar")
        if native:
            ck.check(len(inits) == 1 and not regular, f"{name}: sidecar is an initContainers entry (native)")
        else:
            ck.check(len(regular) == 1 and not inits, f"{name}: sidecar is a regular container (native=false)")
        for c in inits + regular:
            sidecars.append((d, pmd, pspec, c, c in inits))

    for d, pmd, pspec, c, is_init in sidecars:
        name = f"{d['kind']}/{d['metadata']['name']}"
        env = env_map(c)
        if is_init:
            ck.check(c.get("restartPolicy") == "Always", f"{name}: native sidecar has restartPolicy Always")
            ck.check(probe_is(c.get("startupProbe"), "/-/ready", "mesh"),
                     f"{name}: native sidecar has startupProbe GET /-/ready on port mesh")
            apps = [x for x in pspec.get("containers", [])]
            ck.check(len(apps) >= 1, f"{name}: app containers in containers")
        else:
            ck.check("restartPolicy" not in c, f"{name}: regular sidecar has no restartPolicy")
            ck.check("startupProbe" not in c, f"{name}: regular sidecar has no startupProbe")
        ck.check(probe_is(c.get("livenessProbe"), "/-/health", "mesh"),
                 f"{name}: livenessProbe GET /-/health on port mesh")
        ck.check(probe_is(c.get("readinessProbe"), "/-/ready", "mesh"),
                 f"{name}: readinessProbe GET /-/ready on port mesh")
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        mesh_port = int(env_value(c, "MICRO_MESH_PORT") or 9100)
        ck.check(ports.get("mesh") == mesh_port, f"{name}: containerPort mesh = MICRO_MESH_PORT {mesh_port}")
        api_port = int(env_value(c, "MICRO_API_PORT") or 3500)
        ck.check(api_port not in ports.values(), f"{name}: the loopback API port is not a containerPort")
        ck.check(env_value(c, "MICRO_API_BIND") in (None, "127.0.0.1", "::1"),
                 f"{name}: API bound to loopback")
        ck.check(bool(env_value(c, "MICRO_NAMESPACE")), f"{name}: MICRO_NAMESPACE set")
        pod_ip = (env.get("POD_IP") or {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        ck.check(pod_ip == "status.podIP", f"{name}: POD_IP from the downward API status.podIP")
        ck.check(bool(env_value(c, "MICRO_APP_URL")), f"{name}: MICRO_APP_URL set")
        reg = env_value(c, "MICRO_REGISTRY")
        if isinstance(registry_address, re.Pattern):
            ok = reg is not None and registry_address.fullmatch(reg) is not None
        else:
            ok = reg == registry_address
        ck.check(ok, f"{name}: MICRO_REGISTRY {reg!r} points at the registry Service ({registry_address})")
        flags = arg_flags(c)
        for f in SIDECAR_INT_FLAGS:
            ck.check(re.fullmatch(r"[0-9]+", flags.get(f, "")) is not None,
                     f"{name}: --{f}=<integer> (got {flags.get(f)!r})")
        names = arg_names(c)
        dups = sorted({f for f in names if names.count(f) > 1})
        ck.check(not dups, f"{name}: no flag given twice (got {dups})")
        policy = flags.get("breaker-policy")
        ck.check(policy in BREAKER_POLICIES, f"{name}: --breaker-policy is one of {sorted(BREAKER_POLICIES)} (got {policy!r})")
        for f in SIDECAR_CONSECUTIVE_FLAGS:
            if policy == "consecutive":
                ck.check(re.fullmatch(r"[0-9]+", flags.get(f, "")) is not None,
                         f"{name}: consecutive breaker: --{f}=<integer> (got {flags.get(f)!r})")
            else:
                ck.check(f not in flags, f"{name}: --{f} only with --breaker-policy=consecutive")
        # Shutdown timing: preStop, then SIGTERM and up to --shutdown-grace-ms of drain, all
        # inside terminationGracePeriodSeconds.
        grace = math.ceil(int(flags.get("shutdown-grace-ms", "5000")) / 1000)
        tgps = pspec.get("terminationGracePeriodSeconds", 30)
        mode, secs = prestop_seconds(c)
        want_pre = exp.get("prestop")
        if want_pre == "none":
            ck.check(mode is None, f"{name}: no preStop hook (got {mode} {secs})")
        elif want_pre:
            ck.check(secs == int(want_pre), f"{name}: preStop waits {want_pre} s (got {mode} {secs})")
        if exp.get("prestop_mode") and want_pre != "none":
            ck.check(mode == exp["prestop_mode"], f"{name}: preStop uses {exp['prestop_mode']} (got {mode})")
        ck.check(mode != "other", f"{name}: preStop is a plain sleep")
        ck.check((secs or 0) + grace < tgps,
                 f"{name}: preStop {secs or 0} s + drain {grace} s < terminationGracePeriodSeconds {tgps}")
        # The prometheus annotations point at the mesh port.
        ann = pmd.get("annotations") or {}
        if d["kind"] == "Deployment":
            ck.check(ann.get("prometheus.io/scrape") == "true"
                     and ann.get("prometheus.io/port") == str(mesh_port)
                     and ann.get("prometheus.io/path") == "/metrics",
                     f"{name}: prometheus.io annotations for the mesh port")
        # Tokens.
        tokens = exp.get("tokens", "none")
        tok = {k: v for k, v in env.items() if k in TOKEN_ENVS}
        if tokens == "none":
            ck.check(not tok, f"{name}: no token env without tokens")
        else:
            ck.check(bool(tok), f"{name}: token env wired")
            for k, e in tok.items():
                ref = (e.get("valueFrom") or {}).get("secretKeyRef") or {}
                ck.check(bool(ref.get("name")) and bool(ref.get("key")) and "value" not in e,
                         f"{name}: {k} comes from a secretKeyRef")
                if tokens == "existing":
                    ck.check(ref.get("name") == exp.get("secret", "my-tokens"),
                             f"{name}: {k} from the existing Secret")
                else:
                    sec = next((s for s in by_kind.get("Secret", [])
                                if s["metadata"]["name"] == ref.get("name")), None)
                    ck.check(sec is not None, f"{name}: {k}: Secret {ref.get('name')} rendered")
                    if sec:
                        ck.check(ref.get("key") in (sec.get("stringData") or {}),
                                 f"{name}: {k}: key {ref.get('key')} in the Secret")

    # ---- values rendered as their flags (values=FILE) ------------------------------------
    if exp.get("values"):
        with open(exp["values"], encoding="utf-8") as f:
            vals = yaml.safe_load(f) or {}
        sv = vals.get("sidecar") or {}
        ck.check(not sidecars or bool(sv), f"values {exp['values']}: has sidecar values")
        for d, pmd, pspec, c, _ in sidecars:
            name = f"{d['kind']}/{d['metadata']['name']}"
            flags = arg_flags(c)
            for k, want in sv.items():
                if k in SIDECAR_NOT_FLAGS:
                    continue
                if k in SIDECAR_ENV_VALUES:
                    got = env_value(c, SIDECAR_ENV_VALUES[k])
                    ck.check(got == yaml_text(want),
                             f"{name}: sidecar.{k}={want!r} -> {SIDECAR_ENV_VALUES[k]} (got {got!r})")
                elif k == "appHealth":
                    if env_value(c, "MICRO_APP_HEALTH_URL") is None:
                        continue  # health checks off for this pod: no --app-health-* flags
                    for sub, w in want.items():
                        if sub == "path":
                            continue  # MICRO_APP_HEALTH_URL, see the demo checks
                        f = "app-health-" + flag_of(sub)
                        ck.check(flags.get(f) == yaml_text(w),
                                 f"{name}: sidecar.appHealth.{sub}={w!r} -> --{f} (got {flags.get(f)!r})")
                else:
                    f = flag_of(k)
                    if f in SIDECAR_CONSECUTIVE_FLAGS and flags.get("breaker-policy") != "consecutive":
                        ck.check(f not in flags, f"{name}: sidecar.{k}: --{f} only with the consecutive policy")
                        continue
                    ck.check(flags.get(f) == yaml_text(want),
                             f"{name}: sidecar.{k}={want!r} -> --{f} (got {flags.get(f)!r})")
        rv = vals.get("registry") or {}
        if registry_deps:
            ck.check(registry_conf is not None, f"values {exp['values']}: the registry's config file was read")
        for k in REGISTRY_CONFIG_VALUES:
            if k not in rv or registry_conf is None:
                continue
            f = flag_of(k)
            got = registry_conf.get(f)
            if isinstance(rv[k], bool):
                ok = got is True if rv[k] else got in (None, False)
            else:
                ok = got == rv[k]
            ck.check(ok, f"registry: registry.{k}={rv[k]!r} -> config {f} (got {got!r})")
        # The etcd store's settings (etcd.* values) reach the config file as their flags.
        ev = vals.get("etcd") or {}
        if registry_conf is not None and rv.get("store") == "etcd":
            ck.check(registry_conf.get("store") == "etcd", "registry: registry.store=etcd -> config store")
            for k in ("prefix", "leaseTtlMs", "dialTimeoutMs"):
                if k in ev:
                    f = "etcd-" + flag_of(k)
                    ck.check(registry_conf.get(f) == ev[k],
                             f"registry: etcd.{k}={ev[k]!r} -> config {f} (got {registry_conf.get(f)!r})")
            if ev.get("endpoints"):
                ck.check(registry_conf.get("etcd-endpoints") == ",".join(ev["endpoints"]),
                         f"registry: etcd.endpoints -> config etcd-endpoints (got {registry_conf.get('etcd-endpoints')!r})")

    # ---- per-pod flags (flags.NS=FLAG=V,...) ---------------------------------------------
    for key, spec in exp.items():
        if not key.startswith("flags."):
            continue
        ns = key[len("flags."):]
        mine = [c for _, _, _, c, _ in sidecars if env_value(c, "MICRO_NAMESPACE") == ns]
        ck.check(len(mine) >= 1, f"flags.{ns}: a sidecar with MICRO_NAMESPACE {ns}")
        for c in mine:
            flags = arg_flags(c)
            for item in filter(None, spec.split(",")):
                f, _, want = item.partition("=")
                ck.check(flags.get(f) == want, f"sidecar {ns}: --{f}={want} (got {flags.get(f)!r})")

    # ---- tokens: secret and registry ------------------------------------------------------
    tokens = exp.get("tokens", "none")
    secrets = by_kind.get("Secret", [])
    if tokens == "created":
        ck.check(len(secrets) == 1, "tokens: the chart creates one Secret")
    else:
        ck.check(not secrets, f"tokens={tokens}: no Secret rendered")
    for dep in registry_deps:
        (c,) = [c for c in dep["spec"]["template"]["spec"]["containers"] if command_of(c) == "micro-registry"]
        tok = set(env_map(c)) & TOKEN_ENVS
        if tokens == "none":
            ck.check(not tok, "registry: no token env without tokens")
        else:
            ck.check(tok == {"MICRO_MESH_TOKEN"}, f"registry: gets only MICRO_MESH_TOKEN (got {sorted(tok)})")

    # ---- demo ----------------------------------------------------------------------------
    demo = exp.get("demo", "false") == "true"
    demo_ns = []
    for d, pmd, pspec, c, _ in sidecars:
        echo = [x for x in pspec.get("containers", []) if command_of(x) == "micro-echo"]
        if not echo:
            continue
        ns = env_value(c, "MICRO_NAMESPACE")
        demo_ns.append(ns)
        eflags = arg_flags(echo[0])
        ck.check(env_value(c, "MICRO_APP_URL") == f"http://127.0.0.1:{eflags.get('port')}",
                 f"demo {ns}: MICRO_APP_URL is micro-echo's --port")
        ck.check(eflags.get("bind") in ("127.0.0.1", None), f"demo {ns}: micro-echo on loopback")
        ck.check("/echo" in (env_value(c, "MICRO_ROUTES") or "").split(","), f"demo {ns}: route /echo")
        health = env_value(c, "MICRO_APP_HEALTH_URL")
        ck.check(health == f"http://127.0.0.1:{eflags.get('port')}/health",
                 f"demo {ns}: app health checks on micro-echo's /health (got {health!r})")
        ck.check(re.fullmatch(r"[0-9]+", arg_flags(c).get("app-health-interval-ms", "")) is not None,
                 f"demo {ns}: --app-health-interval-ms=<integer>")
    if demo:
        ck.check(sorted(map(str, demo_ns)) == ["echo-a", "echo-b"], f"demo: echo-a and echo-b (got {demo_ns})")
    else:
        ck.check(not demo_ns, f"no demo apps (got {demo_ns})")

    # ---- helm test pods --------------------------------------------------------------------
    test_pods = [d for d in by_kind.get("Pod", [])
                 if (d["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"]
    if exp.get("tests", "true" if source == "helm" else "false") == "true":
        ck.check(len(test_pods) >= 1, "a helm test pod")
        reg_svc = registry_svc_name or next(iter(services), None)
        ck.check(any("/-/health" in " ".join(map(str, x.get("command", []) + x.get("args", [])))
                     and (reg_svc or "") in " ".join(map(str, x.get("command", [])))
                     for p in test_pods for x in p["spec"]["containers"]),
                 "a helm test pod checks the registry Service's /-/health")
        for p in test_pods:
            ck.check(p["spec"].get("restartPolicy") == "Never", f"test pod {p['metadata']['name']}: restartPolicy Never")
    else:
        ck.check(not test_pods, "no helm test pods")

    print(f"check_manifests[{ck.name}]: {ck.passed} passed, {ck.failed} failed")
    return 1 if ck.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
