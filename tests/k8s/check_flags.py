#!/usr/bin/env python3
"""Keeps the Helm chart in step with the binaries' flags: `micro-sidecar --help` and
`micro-registry --help` are the contract.

    check_flags.py CHART_DIR BIN_DIR

For every option of both binaries' --help:
- the chart has a value for it (values.yaml and values.schema.json), or it is listed
  below as wired another way (a key of the sidecar include's dict, tokens.*, the chart's
  own --config file);
- integer flags: the schema says type integer with the binary's [min..max] as
  minimum/maximum; choice flags (a|b|c): the schema's enum is exactly the choices;
  switches: the schema says boolean;
- the value's default in values.yaml is the binary's default (but for the few listed in
  DELIBERATE, with the reason);
- the schema's description names the flag (--flag), so `helm show values`/the schema
  lead back to --help.
And the per-pod settings of the sidecar template ("micro-sidecar.sidecar.podSettings" in
templates/_sidecar.tpl) carry the same bounds/choices as the binary.
Prints failures and "check_flags: N passed, M failed"; exits 1 on failure.
"""
import json
import os
import re
import subprocess
import sys

import yaml

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"check_flags: FAIL: {what}")
    return cond


# Options wired without a value of their own (flag -> how).
SIDECAR_OTHER = {
    "namespace": "the include's dict: namespace",
    "app-url": "the include's dict: appUrl / appPort",
    "route": "the include's dict: routes",
    "mesh-token": "tokens.meshToken / tokens.existingSecret",
    "api-token": "tokens.apiToken / tokens.existingSecret",
    "app-token": "tokens.appToken / tokens.existingSecret",
    "config": "not used: every option is a value",
    "help": "",
    "version": "",
}
REGISTRY_OTHER = {
    "mesh-token": "tokens.meshToken / tokens.existingSecret",
    "etcd-ca-file": "etcd.tls.existingSecret (mounted, etcd.tls.caKey)",
    "etcd-cert-file": "etcd.tls.existingSecret (mounted, etcd.tls.certKey)",
    "etcd-key-file": "etcd.tls.existingSecret (mounted, etcd.tls.keyKey)",
    "config": "the chart's ConfigMap (registry.*, registry.extraConfig)",
    "help": "",
    "version": "",
}
# Flags whose value path is not sidecar.<camelCase> / registry.<camelCase>.
SIDECAR_PATHS = {
    "registry": "registryAddress",
    "app-health-url": "appHealth.path",
    "app-health-interval-ms": "appHealth.intervalMs",
    "app-health-timeout-ms": "appHealth.timeoutMs",
    "app-health-threshold": "appHealth.threshold",
}
# Registry flags whose value is not registry.<camelCase>; "/a.b" is the path a.b from the
# top of values.yaml (the etcd.* block serves the registry and the chart's own etcd).
REGISTRY_PATHS = {
    "etcd-endpoints": "/etcd.endpoints",
    "etcd-prefix": "/etcd.prefix",
    "etcd-lease-ttl-ms": "/etcd.leaseTtlMs",
    "etcd-dial-timeout-ms": "/etcd.dialTimeoutMs",
}
# Defaults that differ from the binary's on purpose.
DELIBERATE = {
    ("sidecar", "log-format"): "json: one object per line for log collectors",
    ("registry", "log-format"): "json: one object per line for log collectors",
    ("sidecar", "registry"): "empty: this release's registry Service",
    ("sidecar", "app-health-url"): "a path appended to the app url; empty: off",
    ("registry", "etcd-endpoints"): "a list; empty: the chart's own etcd cluster",
    ("sidecar", "verify-peer-address"): "on: pod-to-pod traffic keeps the pod IP as the source (docs/SECURITY.md)",
}


def camel(flag):
    parts = flag.split("-")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def parse_help(text):
    """{flag: {"metavar", "lo", "hi", "default", "choices"}} from a --help text."""
    entries, cur = [], None
    for line in text.splitlines():
        m = re.match(r"^  (?:-[a-zA-Z], )?--([a-z0-9-]+)(?: ([^ ].*?))?(?:\s{2,}(.*))?$", line)
        if m:
            cur = {"flag": m.group(1), "metavar": m.group(2) or "", "text": m.group(3) or ""}
            entries.append(cur)
        elif cur is not None and re.match(r"^\s{10,}\S", line):
            cur["text"] += " " + line.strip()
        else:
            cur = None
    out = {}
    for e in entries:
        t = e["text"]
        b = re.search(r"\[(-?[0-9]+)\.\.(-?[0-9]+)\]", t)
        d = re.search(r"\[default: ([^\]]*)\]", t)
        mv = e["metavar"].strip()
        out[e["flag"]] = {
            "metavar": mv,
            "lo": int(b.group(1)) if b else None,
            "hi": int(b.group(2)) if b else None,
            "default": d.group(1) if d else None,
            "choices": mv.split("|") if "|" in mv else None,
        }
    return out


def lookup(tree, path):
    node = tree
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None, False
        node = node[part]
    return node, True


def schema_node(schema, path):
    node = schema
    for part in path.split("."):
        props = (node or {}).get("properties") or {}
        if part not in props:
            return None
        node = props[part]
        while "$ref" in node:
            target = schema
            for p in node["$ref"][2:].split("/"):
                target = target[p]
            node = target
    return node


def as_text(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def pod_settings(tpl):
    """The per-pod settings table of _sidecar.tpl as a dict."""
    m = re.search(r'define "micro-sidecar\.sidecar\.podSettings" -}}\n(.*?)\n\{\{- end -}}', tpl, re.S)
    return yaml.safe_load(m.group(1)) if m else None


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__)
    chart, bindir = argv[1], argv[2]
    with open(os.path.join(chart, "values.yaml"), encoding="utf-8") as f:
        values = yaml.safe_load(f)
    with open(os.path.join(chart, "values.schema.json"), encoding="utf-8") as f:
        schema = json.load(f)
    binaries = {
        "sidecar": (os.path.join(bindir, "sidecar", "micro-sidecar"), SIDECAR_OTHER, SIDECAR_PATHS),
        "registry": (os.path.join(bindir, "registry", "micro-registry"), REGISTRY_OTHER, REGISTRY_PATHS),
    }
    helps = {}
    for section, (binary, other, paths) in binaries.items():
        res = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10)
        helps[section] = opts = parse_help(res.stdout)
        check(res.returncode == 0 and len(opts) > 5, f"{binary} --help lists its options ({len(opts)})")
        for flag, o in opts.items():
            if flag in other:
                continue  # wired another way (the table above)
            path = paths.get(flag, camel(flag))
            if path.startswith("/"):
                full = path = path[1:]
                val, present = lookup(values, path)
            else:
                full = f"{section}.{path}"
                val, present = lookup(values.get(section) or {}, path)
            if not check(present, f"--{flag} ({section}): no value {full} in values.yaml"):
                continue
            node = schema_node(schema, full)
            if not check(node is not None, f"--{flag}: {full} is not in values.schema.json"):
                continue
            check(f"--{flag}" in (node.get("description") or ""),
                  f"{full}: the schema description names --{flag} (got {node.get('description')!r})")
            if o["choices"]:
                check(node.get("type") == "string" and node.get("enum") == o["choices"],
                      f"{full}: enum {node.get('enum')} = --{flag} choices {o['choices']}")
            elif o["lo"] is not None:
                check(node.get("type") == "integer", f"{full}: type integer (got {node.get('type')})")
                check(node.get("minimum") == o["lo"] and node.get("maximum") == o["hi"],
                      f"{full}: bounds [{node.get('minimum')}..{node.get('maximum')}] = --{flag} [{o['lo']}..{o['hi']}]")
            elif not o["metavar"]:
                check(node.get("type") == "boolean", f"{full}: a switch is type boolean (got {node.get('type')})")
            if (section, flag) in DELIBERATE:
                continue
            if o["default"] is not None:
                check(as_text(val) == o["default"],
                      f"{full}: default {as_text(val)!r} = --{flag} default {o['default']!r}")
            else:
                check(val in ("", None, False), f"{full}: --{flag} has no default, so neither has the value (got {val!r})")
        # Nothing in the table above that the binary does not have (the etcd store's flags
        # are listed ahead of the binary that has them).
        for flag in other:
            if flag.startswith("etcd-") and "store" not in opts:
                continue
            check(flag in opts, f"--{flag} ({section}) is listed as wired another way but not in --help")

    # The per-pod settings table of the sidecar template.
    with open(os.path.join(chart, "templates", "_sidecar.tpl"), encoding="utf-8") as f:
        table = pod_settings(f.read())
    if check(isinstance(table, dict) and table, "_sidecar.tpl: micro-sidecar.sidecar.podSettings parses"):
        inverse = {SIDECAR_PATHS.get(fl, camel(fl)): fl for fl in helps["sidecar"]}
        for key, bounds in table.items():
            flag = inverse.get(key)
            if not check(flag is not None, f"podSettings {key}: not a sidecar flag's value"):
                continue
            o = helps["sidecar"][flag]
            want = o["choices"] if o["choices"] else [o["lo"], o["hi"]]
            check(bounds == want, f"podSettings {key}: {bounds} = --{flag} {want}")

    print(f"check_flags: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
