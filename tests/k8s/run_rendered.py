#!/usr/bin/env python3
"""Runs the rendered demo with the real binaries on this machine, as Kubernetes would run
the pods, to prove the chart's (or deploy/'s) flags, env, config file, probe paths and
ports are the ones the binaries understand.

    run_rendered.py RENDERED.yaml BIN_DIR [name=LABEL]

RENDERED.yaml: a rendering with the demo (helm template --set demo.enabled=true, or
kubectl kustomize deploy/). BIN_DIR: a scripts/build.sh build directory
(registry/micro-registry, sidecar/micro-sidecar, examples/echo/micro-echo).

Every pod here shares the machine's network instead of having its own, so ports are
remapped to free ones: the registry gets --port/--bind flags (flags win over its config
file), each sidecar MICRO_MESH_PORT/MICRO_API_PORT/MICRO_REGISTRY/MICRO_APP_URL and
POD_IP=127.0.0.1, each micro-echo a later --port. Everything else (the registry's
--config file from the ConfigMap, the sidecar's args and env, the probe paths, the
scrape path) is taken from the manifests as rendered. Then:
  - the registry's liveness/readiness probe paths answer 200 and its scrape path serves
    metrics;
  - each sidecar's startupProbe path turns 200 (it registered), its liveness and
    readiness paths answer 200 on the mesh port, its scrape path serves metrics;
  - the registry lists every demo namespace;
  - a call from the first demo app's sidecar API to the last demo app's route returns
    the payload (what `kubectl exec ... curl localhost:3500/v1/call/...` does);
  - SIGTERM: every process exits 0 within its drain time.
Prints failures and "run_rendered[LABEL]: N passed, M failed"; exits 1 on failure.
"""
import json
import os
import random
import re
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
        print(f"run_rendered[{label}]: FAIL: {what}", flush=True)
    return cond


_used = set()


def free_port():
    """A free port below the ephemeral range, so that other programs' outgoing
    connections do not take it between this check and the bind of our process."""
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


def http(method, url, body=None, timeout=5):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return None, str(e)


def wait_200(url, seconds):
    deadline = time.time() + seconds
    last = None
    while time.time() < deadline:
        last = http("GET", url, timeout=1)
        if last[0] == 200:
            return last
        time.sleep(0.1)
    return last


def command_of(c):
    return (c.get("command") or [None])[0]


def env_values(c):
    return {e["name"]: e["value"] for e in c.get("env") or [] if "value" in e}


def main(argv):
    global label
    if len(argv) < 3:
        sys.exit(__doc__)
    rendered, bindir = argv[1], argv[2]
    for kv in argv[3:]:
        k, _, v = kv.partition("=")
        if k == "name":
            label = v
    bins = {
        "micro-registry": os.path.join(bindir, "registry", "micro-registry"),
        "micro-sidecar": os.path.join(bindir, "sidecar", "micro-sidecar"),
        "micro-echo": os.path.join(bindir, "examples", "echo", "micro-echo"),
    }
    for b in bins.values():
        if not os.access(b, os.X_OK):
            sys.exit(f"run_rendered: {b} missing (build first: scripts/build.sh)")
    with open(rendered, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}

    procs = []  # (name, Popen, drain seconds)
    tmp = tempfile.mkdtemp(prefix="run-rendered.")
    logs = {}

    def start(name, args, env=None):
        log = open(os.path.join(tmp, name + ".log"), "w+")
        logs[name] = log
        p = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        return p

    try:
        # ---- the registry -------------------------------------------------------------
        (reg_dep,) = [d for d in deployments
                      if any(command_of(c) == "micro-registry" for c in d["spec"]["template"]["spec"]["containers"])]
        rspec = reg_dep["spec"]["template"]["spec"]
        (rc,) = [c for c in rspec["containers"] if command_of(c) == "micro-registry"]
        args = []
        for a in rc.get("args") or []:
            m = re.match(r"^--config=(.*)$", a)
            if m:
                path = m.group(1)
                mount = next(x for x in rc["volumeMounts"] if path.startswith(x["mountPath"].rstrip("/") + "/"))
                vol = next(v for v in rspec["volumes"] if v["name"] == mount["name"])
                cm = configmaps[vol["configMap"]["name"]]
                local = os.path.join(tmp, "registry.yaml")
                with open(local, "w") as f:
                    f.write(cm["data"][path[len(mount["mountPath"].rstrip("/")) + 1:]])
                args.append("--config=" + local)
            else:
                args.append(a)
        reg_port = free_port()
        reg = start("registry", [bins["micro-registry"]] + args + [f"--port={reg_port}", "--bind=127.0.0.1"],
                    env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        procs.append(("registry", reg, 5))
        base = f"http://127.0.0.1:{reg_port}"
        live = rc["livenessProbe"]["httpGet"]["path"]
        ready = rc["readinessProbe"]["httpGet"]["path"]
        st = wait_200(base + ready, 10)
        check(st and st[0] == 200, f"registry readiness {ready}: {st}")
        st = http("GET", base + live)
        check(st[0] == 200 and '"ok"' in st[1], f"registry liveness {live}: {st}")
        ann = reg_dep["spec"]["template"]["metadata"].get("annotations") or {}
        st = http("GET", base + ann.get("prometheus.io/path", "/metrics"))
        check(st[0] == 200 and "#" in st[1], f"registry scrape path serves metrics: {st[0]}")

        # ---- the demo pods: micro-echo + sidecar ---------------------------------------
        pods = []
        for d in deployments:
            spec = d["spec"]["template"]["spec"]
            allc = (spec.get("initContainers") or []) + spec["containers"]
            sc = [c for c in allc if command_of(c) == "micro-sidecar"]
            echo = [c for c in allc if command_of(c) == "micro-echo"]
            if not sc or not echo:
                continue
            sc, echo = sc[0], echo[0]
            native = any(c is sc for c in (spec.get("initContainers") or []))
            ns = env_values(sc)["MICRO_NAMESPACE"]
            echo_port, mesh_port, api_port = free_port(), free_port(), free_port()
            echo_args = [bins["micro-echo"]] + list(echo.get("args") or []) + [f"--port={echo_port}"]
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
            env.update(env_values(sc))
            app_url = env.get("MICRO_APP_URL", "")
            check(app_url.endswith(":" + re.sub(r".*--port=", "", next(a for a in echo["args"] if a.startswith("--port=")))),
                  f"{ns}: MICRO_APP_URL {app_url} is micro-echo's port")
            env.update({
                "POD_IP": "127.0.0.1",
                "MICRO_REGISTRY": f"127.0.0.1:{reg_port}",
                "MICRO_MESH_PORT": str(mesh_port),
                "MICRO_MESH_BIND": "127.0.0.1",
                "MICRO_API_PORT": str(api_port),
                "MICRO_APP_URL": f"http://127.0.0.1:{echo_port}",
            })
            if "MICRO_APP_HEALTH_URL" in env:
                env["MICRO_APP_HEALTH_URL"] = re.sub(r"^http://127\.0\.0\.1:[0-9]+", f"http://127.0.0.1:{echo_port}",
                                                     env["MICRO_APP_HEALTH_URL"])
            grace = 5
            for a in sc.get("args") or []:
                m = re.match(r"^--shutdown-grace-ms=([0-9]+)$", a)
                if m:
                    grace = -(-int(m.group(1)) // 1000)
            if not native:  # regular containers start together
                procs.append((f"{ns}-echo", start(f"{ns}-echo", echo_args), 5))
            s = start(f"{ns}-sidecar", [bins["micro-sidecar"]] + list(sc.get("args") or []), env=env)
            procs.append((f"{ns}-sidecar", s, grace + 2))
            if native:
                # As kubelet does: the app starts once the sidecar's startupProbe passes.
                p = sc["startupProbe"]["httpGet"]["path"]
                st = wait_200(f"http://127.0.0.1:{mesh_port}{p}", 15)
                check(st and st[0] == 200, f"{ns}: native sidecar's startupProbe {p} passes before the app runs: {st}")
                procs.append((f"{ns}-echo", start(f"{ns}-echo", echo_args), 5))
            pods.append((d, ns, sc, mesh_port, api_port))
            st = wait_200(f"http://127.0.0.1:{echo_port}/health", 10)
            check(st and st[0] == 200, f"{ns}: micro-echo answers: {st}")

        check(len(pods) >= 2, f"at least two demo pods (got {len(pods)})")
        for d, ns, sc, mesh_port, api_port in pods:
            mesh = f"http://127.0.0.1:{mesh_port}"
            probe = sc.get("startupProbe") or sc["readinessProbe"]
            p = probe["httpGet"]["path"]
            st = wait_200(mesh + p, 15)
            check(st and st[0] == 200, f"{ns}: startup/readiness {p} on the mesh port turns 200 (registered): {st}")
            for kind in ("livenessProbe", "readinessProbe"):
                p = sc[kind]["httpGet"]["path"]
                st = http("GET", mesh + p)
                check(st[0] == 200, f"{ns}: {kind} {p} on the mesh port: {st}")
            ann = d["spec"]["template"]["metadata"].get("annotations") or {}
            st = http("GET", mesh + ann.get("prometheus.io/path", "/metrics"))
            check(st[0] == 200 and "#" in st[1], f"{ns}: scrape path on the mesh port serves metrics: {st[0]}")
        # A pod whose app health is checked registers once its app answers (a native
        # sidecar starts before its app): poll with a deadline.
        want = {ns for _, ns, _, _, _ in pods}
        deadline = time.time() + 10
        while True:
            st = http("GET", base + "/v1/namespaces")
            names = json.loads(st[1]) if st[0] == 200 else {}
            if want <= set(names) or time.time() > deadline:
                break
            time.sleep(0.05)
        for _, ns, _, _, _ in pods:
            check(ns in names, f"registry lists {ns}: {st}")

        # ---- a call through the mesh -------------------------------------------------------
        if len(pods) >= 2:
            src, dst = pods[0], pods[-1]
            routes = env_values(dst[2]).get("MICRO_ROUTES", "/echo").split(",")
            url = f"http://127.0.0.1:{src[4]}/v1/call/{dst[1]}{routes[0]}"
            st = http("POST", url, {"x": 1}, timeout=15)
            ok = False
            if st[0] == 200:
                try:
                    ok = json.loads(st[1]).get("x") == 1
                except (ValueError, AttributeError):
                    ok = False
            check(ok, f"call {src[1]} -> {dst[1]}{routes[0]}: {st}")
    finally:
        # ---- shutdown in kubelet's order for native sidecars: apps, then sidecars, then the registry
        for name, p, drain in sorted(procs, key=lambda x: 0 if x[0].endswith("-echo") else 1 if x[0].endswith("-sidecar") else 2):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    code = p.wait(drain)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
                    code = "timeout"
                check(code == 0, f"{name}: exits 0 on SIGTERM within {drain} s (got {code})")
            else:
                check(False, f"{name}: died early with {p.returncode}")
        if failed:
            for name, log in logs.items():
                log.seek(0)
                tail = log.read().splitlines()[-8:]
                for line in tail:
                    print(f"run_rendered[{label}]: {name}: {line}")
        for log in logs.values():
            log.close()
    print(f"run_rendered[{label}]: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
