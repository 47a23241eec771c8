"""The line ``mlpack start`` prints once every model is ready: what to try first."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable
from pathlib import Path

from ..engine.registry import ModelEntry

REQUEST_FILE = "request.json"
_WILDCARDS = {"0.0.0.0", "::", ""}


def ready_hint(entries: Iterable[ModelEntry], host: str, port: int) -> str | None:
    """``ready: try curl ...`` when every model is READY (None otherwise or with no models).

    The example sends the model's ``request.json`` when its folder has one (as ``mlpack init``
    projects and the examples do), else asks for the model's metadata.
    """
    entries = sorted(entries, key=lambda e: (e.name, e.version or ""))
    if not entries or any(entry.state.value != "READY" for entry in entries):
        return None
    first = entries[0]
    shown = "localhost" if host in _WILDCARDS else f"[{host}]" if ":" in host else host
    address = f"{shown}:{port}"
    base = f"curl -s {address}/v2/models/{first.name}"
    request = Path(first.settings.folder) / REQUEST_FILE if first.settings.folder else None
    if request is not None and request.is_file():
        command = (
            f"{base}/infer -H 'Content-Type: application/json' -d @{shlex.quote(_shown(request))}"
        )
    else:
        command = base
    count = f"{len(entries)} models" if len(entries) > 1 else f"model '{first.name}'"
    return f"ready ({count} READY): try  {command}"


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative
