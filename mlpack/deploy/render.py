"""Choose a target's renderer; write manifests as one YAML stream or one file each."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from . import knative, kserve, kubernetes
from .values import DeployValues

Target = Literal["kubernetes", "kserve", "knative"]
TARGETS: dict[str, Callable[[DeployValues], list[dict[str, Any]]]] = {
    "kubernetes": kubernetes.render,
    "kserve": kserve.render,
    "knative": knative.render,
}


def render_manifests(values: DeployValues, target: str) -> list[dict[str, Any]]:
    return TARGETS[target](values)


def to_yaml(manifests: list[dict[str, Any]]) -> str:
    """One YAML stream (``---`` between documents), keys in the order they were built."""
    import yaml

    text: str = yaml.safe_dump_all(manifests, sort_keys=False, default_flow_style=False)
    return text


def write_folder(manifests: list[dict[str, Any]], folder: Path) -> list[Path]:
    """One file per manifest: ``NN-kind-name.yaml``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index, manifest in enumerate(manifests, 1):
        path = (
            folder / f"{index:02d}-{manifest['kind'].lower()}-{manifest['metadata']['name']}.yaml"
        )
        path.write_text(to_yaml([manifest]), encoding="utf-8")
        written.append(path)
    return written
