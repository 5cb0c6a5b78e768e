#!/usr/bin/env python3
"""Runs the rendered etcd StatefulSet with the real etcd (Debian's etcd-server, the
binary the Dockerfile's `etcd` target installs) on this machine, as Kubernetes would run
its pods, to prove the chart's (or deploy/ha/'s) etcd flags form a working cluster and
that the registry's --etcd-endpoints reach it.

    run_etcd.py RENDERED.yaml [name=LABEL] [bin=BUILD_DIR] [etcd=PATH] [etcdctl=PATH]

Every member here shares the machine's network instead of having its own pod, so each
gets its own free client, peer and metrics ports on 127.0.0.1: the member's stable name
(<pod>.<headless service>...) and 0.0.0.0 in the rendered URLs become 127.0.0.1 with that
member's port, $(POD_NAME) its pod name, --data-dir a fresh directory. Every other flag
is passed as rendered. Then:
  - every member's readiness probe (GET /health on the metrics port) answers
    {"health":"true"} (the cluster has a leader) and its liveness port accepts;
  - the registry's config file (the ConfigMap's etcd-endpoints, rewritten the same way)
    reaches the cluster: etcdctl put / get under the registry's etcd-prefix;
  - with bin= (a build directory whose micro-registry has --store): two registry
    replicas run with the rendered config file (its port and etcd-endpoints rewritten
    likewise) and the Deployment's arguments; both turn ready on the Deployment's
    readiness path, a sidecar registered with the first (the sidecar's rendered
    --registry list form) is listed by the second within 2 s, and gone from it within
    the lease TTL + 2 s after the first is SIGKILLed;
  - with one member SIGKILLed, the others still have a quorum (with 3 or more members)
    and a write still succeeds;
  - SIGTERM: every member exits within the pod's terminationGracePeriodSeconds.
A rendering with TLS is not run (it needs certificates); the static checks cover it.
Prints failures and "run_etcd[LABEL]: N passed, M failed"; exits 1 on failure.
"""
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml

passed = failed = 0
label = "run"


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"run_etcd[{label}]: FAIL: {what}", flush=True)
    return cond


_used = set()


def free_port():
    """A free port below the ephemeral range (see run_rendered.py)."""
    while True:
        p = random.randint(20000, 30000)
        if p in _used:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                continue
        _used.add(p)
        return p


def get(url, timeout=2):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return None, str(e)


def healthy(metrics_port):
    st, body = get(f"http://127.0.0.1:{metrics_port}/health")
    try:
        return st == 200 and json.loads(body).get("health") == "true"
    except ValueError:
        return False


def accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def start(cmd, log_path, procs):
    log = open(log_path, "w")
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                         env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    procs.append((p, log))
    return p


def namespaces(port):
    st, body = get(f"http://127.0.0.1:{port}/v1/namespaces")
    try:
        return json.loads(body) if st == 200 else {}
    except ValueError:
        return {}


def run_registries(docs, conf, endpoints, bindir, work, procs):
    """Two registry replicas from the rendered Deployment and config file, one view."""
    reg_bin = os.path.join(bindir, "registry", "micro-registry")
    sc_bin = os.path.join(bindir, "sidecar", "micro-sidecar")
    res = subprocess.run([reg_bin, "--help"], capture_output=True, text=True, timeout=10)
    if "--store" not in res.stdout:
        print(f"run_etcd[{label}]: registry replicas skipped: {reg_bin} has no --store")
        return
    deps = [d for d in docs if d.get("kind") == "Deployment"
            and any((c.get("command") or [None])[0] == "micro-registry" for c in d["spec"]["template"]["spec"]["containers"])]
    if not check(len(deps) == 1, "one registry Deployment"):
        return
    (c,) = [c for c in deps[0]["spec"]["template"]["spec"]["containers"] if (c.get("command") or [None])[0] == "micro-registry"]
    ready_path = ((c.get("readinessProbe") or {}).get("httpGet") or {}).get("path", "/-/health")
    live_path = ((c.get("livenessProbe") or {}).get("httpGet") or {}).get("path", "/-/health")
    ports = []
    for r in range(2):
        port = free_port()
        ports.append(port)
        cfg = dict(conf)
        cfg["port"] = port
        cfg["bind"] = "127.0.0.1"
        cfg["etcd-endpoints"] = endpoints
        cfg["log-format"] = "text"
        path = f"{work}/registry-{r}.yaml"
        with open(path, "w") as f:
            yaml.safe_dump(cfg, f)
        args = []
        for a in c.get("args") or []:
            args.append(f"--config={path}" if str(a).startswith("--config=") else str(a))
        start([reg_bin] + args, f"{work}/registry-{r}.log", procs)
    for r, port in enumerate(ports):
        deadline = time.time() + 20
        while time.time() < deadline and get(f"http://127.0.0.1:{port}{ready_path}", 1)[0] != 200:
            time.sleep(0.1)
        ok = check(get(f"http://127.0.0.1:{port}{ready_path}")[0] == 200,
                   f"registry replica {r}: readiness {ready_path} is 200 within 20 s (synced from etcd)")
        check(get(f"http://127.0.0.1:{port}{live_path}")[0] == 200, f"registry replica {r}: liveness {live_path} is 200")
        if not ok:
            with open(f"{work}/registry-{r}.log") as f:
                print("".join(f.readlines()[-15:]), end="")
    # A sidecar given only replica 0 (as a one-entry list) is listed by replica 1.
    mesh, api = free_port(), free_port()
    start([sc_bin, "--namespace", "run-etcd", f"--registry=127.0.0.1:{ports[0]}", "--advertise-host=127.0.0.1",
           f"--mesh-port={mesh}", "--mesh-bind=127.0.0.1", f"--api-port={api}", "--api-bind=127.0.0.1",
           "--app-url=http://127.0.0.1:1", "--heartbeat-interval-ms=500"], f"{work}/sidecar.log", procs)
    key = f"127.0.0.1:{mesh}"
    deadline = time.time() + 10
    while time.time() < deadline and key not in (namespaces(ports[0]).get("run-etcd") or []):
        time.sleep(0.05)
    check(key in (namespaces(ports[0]).get("run-etcd") or []), "the sidecar registered with replica 0")
    t0 = time.time()
    while time.time() < t0 + 2 and key not in (namespaces(ports[1]).get("run-etcd") or []):
        time.sleep(0.05)
    check(key in (namespaces(ports[1]).get("run-etcd") or []), "replica 1 lists it within 2 s (one view through etcd)")
    # Replica 0 dies: its lease expires and replica 1 forgets the instance.
    ttl = int(conf.get("etcd-lease-ttl-ms", 10000)) / 1000.0
    procs[-3][0].kill()  # replica 0 (the sidecar keeps trying it alone)
    procs[-3][0].wait(5)
    t0 = time.time()
    while time.time() < t0 + ttl + 2 and key in (namespaces(ports[1]).get("run-etcd") or []):
        time.sleep(0.1)
    check(key not in (namespaces(ports[1]).get("run-etcd") or []),
          f"replica 0 SIGKILLed: its instance is gone from replica 1 within the lease TTL + 2 s ({ttl:.0f} s)")


def main(argv):
    global label
    bindir = None
    if len(argv) < 2:
        sys.exit(__doc__)
    rendered = argv[1]
    etcd_bin, etcdctl = shutil.which("etcd") or "/usr/bin/etcd", shutil.which("etcdctl") or "/usr/bin/etcdctl"
    for kv in argv[2:]:
        k, _, v = kv.partition("=")
        if k == "name":
            label = v
        elif k == "etcd":
            etcd_bin = v
        elif k == "etcdctl":
            etcdctl = v
        elif k == "bin":
            bindir = v
    if not (os.access(etcd_bin, os.X_OK) and os.access(etcdctl, os.X_OK)):
        print(f"run_etcd[{label}]: skipped: no etcd/etcdctl (apt-get install etcd-server etcd-client)")
        print(f"run_etcd[{label}]: 0 passed, 0 failed")
        return 0
    with open(rendered, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    stss = [d for d in docs if d.get("kind") == "StatefulSet"
            and any((c.get("command") or [None])[0] == "etcd" for c in d["spec"]["template"]["spec"]["containers"])]
    if not check(len(stss) == 1, f"one etcd StatefulSet in {rendered} (got {len(stss)})"):
        return 1
    sts = stss[0]
    name = sts["metadata"]["name"]
    n = int(sts["spec"]["replicas"])
    pspec = sts["spec"]["template"]["spec"]
    (c,) = [c for c in pspec["containers"] if (c.get("command") or [None])[0] == "etcd"]
    args = [str(a) for a in c.get("args") or []]
    if any(a.startswith(("--cert-file=", "--trusted-ca-file=")) for a in args):
        print(f"run_etcd[{label}]: skipped: a TLS rendering")
        print(f"run_etcd[{label}]: 0 passed, 0 failed")
        return 0
    cports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    kinds = {cports.get("client"): "client", cports.get("peer"): "peer", cports.get("metrics"): "metrics"}
    mine = [{k: free_port() for k in ("client", "peer", "metrics")} for _ in range(n)]
    conf = {}
    for d in docs:
        data = (d.get("data") or {}).get("registry.yaml") if d.get("kind") == "ConfigMap" else None
        if data:
            conf = yaml.safe_load(data) or {}

    def rewrite(text, i):
        """Member names and 0.0.0.0 -> 127.0.0.1 with the member's own ports."""
        text = text.replace("$(POD_NAME)", f"{name}-{i}")

        def member(m):
            j, port = int(m.group(2)), int(m.group(3))
            kind = kinds.get(port)
            check(kind is not None and j < n, f"URL {m.group(0)} is a member's {kind} port")
            return f"{m.group(1)}://127.0.0.1:{mine[j][kind] if kind and j < n else 1}"

        text = re.sub(r"(https?)://" + re.escape(name) + r"-([0-9]+)\.[A-Za-z0-9.-]+:([0-9]+)", member, text)
        return re.sub(r"(https?)://0\.0\.0\.0:([0-9]+)",
                      lambda m: f"{m.group(1)}://127.0.0.1:{mine[i][kinds.get(int(m.group(2)), 'client')]}", text)

    work = tempfile.mkdtemp(prefix="run-etcd.")
    procs = []
    try:
        for i in range(n):
            argv_i = []
            for a in args:
                if a.startswith("--data-dir="):
                    a = f"--data-dir={work}/{i}/data"
                argv_i.append(rewrite(a, i))
            os.makedirs(f"{work}/{i}", exist_ok=True)
            log = open(f"{work}/{i}.log", "w")
            procs.append((subprocess.Popen([etcd_bin] + argv_i, stdout=log, stderr=subprocess.STDOUT,
                                           env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                                "POD_NAME": f"{name}-{i}"}), log))
        deadline = time.time() + 30
        while time.time() < deadline and not all(healthy(m["metrics"]) for m in mine):
            if any(p.poll() is not None for p, _ in procs):
                break
            time.sleep(0.2)
        for i, m in enumerate(mine):
            ok = check(healthy(m["metrics"]), f"{name}-{i}: readiness GET /health is {{\"health\":\"true\"}} within 30 s")
            if not ok:
                with open(f"{work}/{i}.log") as f:
                    print("".join(f.readlines()[-15:]), end="")
            check(accepts(m["client"]), f"{name}-{i}: liveness: the client port accepts")
        # The registry's endpoints reach the cluster.
        endpoints = rewrite(str(conf.get("etcd-endpoints", "")), 0)
        check(endpoints.count(",") == n - 1, f"the registry's etcd-endpoints name {n} members ({endpoints})")
        prefix = str(conf.get("etcd-prefix", "/micro")).rstrip("/")
        ctl = [etcdctl, f"--endpoints={endpoints}", "--dial-timeout=3s", "--command-timeout=5s"]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "ETCDCTL_API": "3"}
        r = subprocess.run(ctl + ["put", f"{prefix}/run-etcd", "ok"], capture_output=True, text=True, env=env, timeout=20)
        check(r.returncode == 0, f"etcdctl put through the registry's endpoints: {r.stdout}{r.stderr}")
        r = subprocess.run(ctl + ["get", "--print-value-only", f"{prefix}/run-etcd"], capture_output=True, text=True,
                           env=env, timeout=20)
        check(r.returncode == 0 and r.stdout.strip() == "ok", f"etcdctl get: {r.stdout}{r.stderr}")
        if bindir:
            run_registries(docs, conf, endpoints, bindir, work, procs)
        if n >= 3:
            procs[0][0].kill()
            procs[0][0].wait(5)
            # the killed member may have been the leader: a write may time out until the
            # others have elected a new one (election timeout 1 s), so retry to a deadline
            deadline = time.time() + 20
            while True:
                r = subprocess.run(ctl + ["put", f"{prefix}/run-etcd", "one-down"], capture_output=True, text=True,
                                   env=env, timeout=30)
                if r.returncode == 0 or time.time() > deadline:
                    break
                time.sleep(0.5)
            check(r.returncode == 0, f"with {name}-0 killed, a write succeeds within 20 s (quorum): {r.stdout}{r.stderr}")
        grace = int(pspec.get("terminationGracePeriodSeconds", 30))
        for i, (p, _) in enumerate(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for i, (p, _) in enumerate(procs):
            try:
                check(p.wait(grace) is not None, f"{name}-{i}: exited")
            except subprocess.TimeoutExpired:
                check(False, f"{name}-{i}: exits within {grace} s of SIGTERM")
    finally:
        for p, log in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            log.close()
        shutil.rmtree(work, ignore_errors=True)
    print(f"run_etcd[{label}]: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
