"""Kubernetes JSON schemas for kubeconform, without GitHub.

The schemas kubeconform normally downloads (yannh/kubernetes-json-schema on GitHub) are not
reachable from every build machine; the PyPI package `kubernetes-validate` (pinned with its
hash in tools/deploy/k8s-schemas.txt) ships the same kind of schemas, generated from the
Kubernetes OpenAPI spec, per Kubernetes version. This script turns one version of them into a
kubeconform schema directory:

    python3 tools/deploy/k8s_schemas.py SITE_PACKAGES_DIR VERSION OUT_DIR

reads SITE_PACKAGES_DIR/kubernetes_validate/kubernetes-json-schema/v<VERSION>-local-strict/
(`uv pip install --target`) and writes OUT_DIR/v<VERSION>-standalone-strict/<kind>-<group>-<v>.json,
each schema self-contained (the definitions it references, and only those, are copied into it),
so kubeconform needs no network and no $ref resolution across files.
Standard library only.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

SHARED_REF = "/api/_definitions.json#/$defs/"
LOCAL_REF = "#/$defs/"


def _walk_refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            for prefix in (SHARED_REF, LOCAL_REF):
                if ref.startswith(prefix):
                    found.add(ref[len(prefix) :])
        for value in node.values():
            _walk_refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _walk_refs(value, found)


def _rewrite(node: Any) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(SHARED_REF):
                value = LOCAL_REF + value[len(SHARED_REF) :]
            out[key] = _rewrite(value)
        return out
    if isinstance(node, list):
        return [_rewrite(value) for value in node]
    return node


def _closure(schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """The definitions `schema` references, directly or through other definitions."""
    pending: set[str] = set()
    _walk_refs(schema, pending)
    needed: dict[str, Any] = {}
    while pending:
        name = pending.pop()
        if name in needed:
            continue
        if name not in definitions:
            raise SystemExit(f"k8s_schemas: unresolved definition {name!r}")
        needed[name] = definitions[name]
        found: set[str] = set()
        _walk_refs(definitions[name], found)
        pending |= found - needed.keys()
    return needed


def convert(source: Path, out: Path) -> int:
    definitions = json.loads((source / "_definitions.json").read_text())["$defs"]
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for path in sorted(source.glob("*.json")):
        if path.name in ("_definitions.json", "all.json"):
            continue
        schema = json.loads(path.read_text())
        schema.pop("$id", None)
        local = schema.pop("$defs", {})
        merged = {**_closure(schema, {**definitions, **local}), **local}
        standalone = _rewrite({**schema, "$defs": merged}) if merged else _rewrite(schema)
        (out / path.name).write_text(json.dumps(standalone, separators=(",", ":")))
        count += 1
    return count


def main() -> None:
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    site_packages, version, out_dir = Path(sys.argv[1]), sys.argv[2].lstrip("v"), Path(sys.argv[3])
    source = site_packages / "kubernetes_validate" / "kubernetes-json-schema"
    source = source / f"v{version}-local-strict"
    if not (source / "_definitions.json").is_file():
        raise SystemExit(f"k8s_schemas: no schemas for Kubernetes {version} in {source}")
    target = out_dir / f"v{version}-standalone-strict"
    out_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".k8s-schemas-", dir=out_dir))
    count = convert(source, scratch)
    if target.exists():  # replaced atomically: a half-written directory is never used
        old = Path(tempfile.mkdtemp(prefix=".old-", dir=out_dir))
        os.replace(target, old / "schemas")
        os.replace(scratch, target)
        shutil.rmtree(old)
    else:
        os.replace(scratch, target)
    print(f"k8s_schemas: {count} schemas for Kubernetes {version} in {target}", file=sys.stderr)


if __name__ == "__main__":
    main()
