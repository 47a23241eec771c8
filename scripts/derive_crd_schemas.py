"""Derive JSON schemas from CustomResourceDefinitions (their ``openAPIV3Schema``).

Usage: python scripts/derive_crd_schemas.py CRD.yaml VERSION SOURCE-NOTE OUT.json

The schema of one served version is kept as is (``x-kubernetes-*`` keys are annotations a
JSON-schema validator ignores); ``apiVersion`` and ``kind`` are pinned to the CRD's group,
version and kind, and a ``$comment`` records where it came from. mlpack's tests validate
the manifests ``mlpack deploy`` renders against these files (tests/unit/deploy).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


def derive(crd: dict[str, Any], version: str, source: str) -> dict[str, Any]:
    spec = crd["spec"]
    served = {v["name"]: v for v in spec["versions"]}
    if version not in served:
        raise SystemExit(f"{crd['metadata']['name']}: no version {version} (has {sorted(served)})")
    schema: dict[str, Any] = dict(served[version]["schema"]["openAPIV3Schema"])
    properties = dict(schema.get("properties", {}))
    properties["apiVersion"] = {"type": "string", "enum": [f"{spec['group']}/{version}"]}
    properties["kind"] = {"type": "string", "enum": [spec["names"]["kind"]]}
    schema["properties"] = properties
    schema["required"] = sorted(
        set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"}
    )
    return {"$schema": "http://json-schema.org/draft-07/schema#", "$comment": source, **schema}


def main() -> None:
    crd_path, version, source, out = sys.argv[1:5]
    crd = yaml.safe_load(Path(crd_path).read_text())
    schema = derive(crd, version, source)
    Path(out).write_text(json.dumps(schema, separators=(",", ":"), sort_keys=True) + "\n")
    print(f"wrote {out} ({Path(out).stat().st_size} bytes)")


if __name__ == "__main__":
    main()
