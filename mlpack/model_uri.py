"""Where a model's artefact is: ``parameters.uri`` (a file or a folder) or a default name.

KServe mounts a model at ``/mnt/models`` and names that folder as the URI, so a folder
URI is searched for the runtime's well-known file names; a folder holding exactly one
file stands for that file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def resolve_model_uri(uri: str | None, folder: str | None, defaults: Sequence[str] = ()) -> Path:
    """The artefact's path, without checking that it exists (except to choose in a folder).

    A relative ``uri`` is taken from ``folder`` (the model's folder). With no ``uri`` the
    first existing of ``defaults`` in ``folder`` is chosen (else the first default).
    """
    base = Path(folder) if folder else Path(".")
    path = (Path(uri) if Path(uri).is_absolute() else base / uri) if uri else base
    if path.is_dir() and (defaults or uri):
        return _pick_in_folder(path, defaults, single_file=bool(uri))
    return path


def _pick_in_folder(folder: Path, defaults: Sequence[str], single_file: bool) -> Path:
    for name in defaults:
        if (folder / name).exists():
            return folder / name
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if single_file and len(files) == 1 and defaults:
        return files[0]
    return folder / defaults[0] if defaults else folder
