#!/usr/bin/env python3
"""Keeps helm/micro-sidecar/values.schema.json strict and in step with values.yaml.

    check_schema.py CHART_DIR

- every object in the schema has additionalProperties: false, or a schema for map
  values; `true` only where a $comment marks a Kubernetes API object (or Helm's global)
  passed through as it is;
- every key of values.yaml is in the schema, and every schema property is in values.yaml
  (no dead or undocumented values).
Prints failures and a closing "check_schema: N passed, M failed"; exits 1 on failure.
"""
import json
import os
import sys

import yaml

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"check_schema: FAIL: {what}")


def resolve(schema, node):
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        target = schema
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def walk(schema, node, where):
    node = resolve(schema, node)
    if not isinstance(node, dict):
        return
    types = node.get("type")
    types = types if isinstance(types, list) else [types]
    if "object" in types:
        ap = node.get("additionalProperties", "missing")
        if ap is True:
            check("$comment" in node, f"{where}: additionalProperties true without a $comment saying why")
        else:
            check(ap is False or isinstance(ap, dict),
                  f"{where}: object without additionalProperties: false (got {ap!r})")
        for k, v in (node.get("properties") or {}).items():
            walk(schema, v, f"{where}.{k}")
        if isinstance(ap, dict):
            walk(schema, ap, f"{where}.*")
    if "array" in types and "items" in node:
        walk(schema, node["items"], f"{where}[]")
    for key in ("anyOf", "oneOf", "allOf"):
        for i, sub in enumerate(node.get(key) or []):
            walk(schema, sub, f"{where}<{key}{i}>")


def compare(schema, node, values, where):
    node = resolve(schema, node)
    props = node.get("properties")
    if not isinstance(values, dict) or props is None:
        return
    for k in values:
        check(k in props, f"values.yaml {where}{k} is not in the schema")
    for k in props:
        if k == "global":
            continue  # Helm's, not ours
        check(k in values, f"schema property {where}{k} is not in values.yaml")
    for k, v in values.items():
        if k in props:
            compare(schema, props[k], v, f"{where}{k}.")


def main():
    chart = sys.argv[1]
    with open(os.path.join(chart, "values.schema.json"), encoding="utf-8") as f:
        schema = json.load(f)
    with open(os.path.join(chart, "values.yaml"), encoding="utf-8") as f:
        values = yaml.safe_load(f)
    check(schema.get("additionalProperties") is False, "top level: additionalProperties false")
    walk(schema, schema, "$")
    for name, d in (schema.get("definitions") or {}).items():
        walk(schema, d, f"#/definitions/{name}")
    compare(schema, schema, values, "")
    print(f"check_schema: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
