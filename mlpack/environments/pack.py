"""Packing environments: requirements files and conda files → tarballs.

* ``environment.yml`` / ``conda.yaml``: created with conda, mamba or micromamba and
  packed with conda-pack (``pip install 'mlpack-serve[build]'``); without a conda tool
  this fails up front, saying what to install.
* ``pack_requirements``: a relocatable tarball of a venv for ``mlpack start``. A venv
  is not relocatable (``pyvenv.cfg``, interpreter links and script shebangs hold
  absolute paths), so the tarball carries ``lib/`` and scripts but no interpreter
  links, plus ``mlpack-venv.json`` (Python version, original prefix); unpacking
  recreates the links for the server's Python and rewrites shebangs
  (``mlpack.environments.unpack.relocate_venv``).

Every tarball made here starts with ``SOURCE_RECORD`` (the file it was packed from and
its sha256), so a tarball older than its file is refused (``files.check_fresh``).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from types import ModuleType

from ..errors import BuildError as BuildError  # defined in the error tree; re-exported
from .build import Installer, conda_tool, create_conda, create_venv, python_tag
from .files import SOURCE_RECORD, source_record
from .unpack import VENV_MANIFEST

__all__ = [
    "BuildError",
    "check_conda_route",
    "conda_pack_module",
    "conda_tool",
    "pack_conda",
    "pack_conda_prefix",
    "pack_requirements",
    "python_tag",
    "run_pip",
]


def run_pip(arguments: list[str], what: str) -> None:
    """Run pip with this interpreter; a failure becomes a ``BuildError`` with pip's output."""
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *arguments]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        detail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise BuildError(f"{what} failed (pip {' '.join(arguments[:1])}):\n{detail}")


def conda_pack_module() -> ModuleType:
    """The ``conda_pack`` library, or a ``BuildError`` naming the extra that installs it."""
    try:
        import conda_pack as module
    except ImportError:
        raise BuildError(
            "packing a conda environment needs conda-pack: pip install 'mlpack-serve[build]'"
        ) from None
    found: ModuleType = module
    return found


def check_conda_route() -> None:
    """Fail now, saying everything to install, unless a conda environment can be made and packed."""
    problems = []
    for check in (conda_tool, conda_pack_module):
        try:
            check()
        except BuildError as error:
            problems.append(error.message)
    if problems:
        raise BuildError("; and ".join(problems))


def pack_conda(environment_file: Path, output: Path) -> Path:
    """Create the conda environment ``environment_file`` describes; pack it with conda-pack."""
    check_conda_route()
    with tempfile.TemporaryDirectory(prefix="mlpack-conda-") as scratch:
        prefix = Path(scratch) / "env"
        create_conda(prefix, environment_file)
        return pack_conda_prefix(prefix, output, environment_file)


def pack_conda_prefix(prefix: Path, output: Path, source: Path | None = None) -> Path:
    """Pack the conda environment at ``prefix`` with conda-pack (recording ``source``)."""
    conda_pack = conda_pack_module()
    if source is not None:
        (prefix / SOURCE_RECORD).write_text(json.dumps(source_record(source)))
    history = prefix / "conda-meta" / "history"
    if (prefix / "conda-meta").is_dir() and not history.exists():
        history.write_text("")  # conda-pack dates bin/conda-unpack by it (fails without)
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        # A package cache that was cleaned is fine: prefixes are then found by scanning.
        environment = conda_pack.CondaEnv.from_prefix(
            str(prefix), on_missing_cache="ignore", ignore_missing_files=True
        )
        environment.pack(output=str(output), force=True)
    except conda_pack.CondaPackException as error:
        raise BuildError(f"conda-pack could not pack {prefix}: {error}") from None
    return output


def pack_requirements(requirements: Path, output: Path, installer: Installer | None = None) -> Path:
    """Build a venv from ``requirements`` and write it as a relocatable tarball to ``output``."""
    with tempfile.TemporaryDirectory(prefix="mlpack-pack-") as scratch:
        prefix = Path(scratch) / "env"
        create_venv(prefix, requirements, installer)
        manifest = {
            "python": python_tag(),
            "prefix": str(prefix),
            "requirements": requirements.read_text(),
        }
        (prefix / VENV_MANIFEST).write_text(json.dumps(manifest, indent=1))
        output.parent.mkdir(parents=True, exist_ok=True)
        temporary = output.with_name(output.name + ".tmp")
        with tarfile.open(temporary, "w:gz", compresslevel=6) as archive:
            record = json.dumps(source_record(requirements), indent=1).encode()
            info = tarfile.TarInfo(SOURCE_RECORD)
            info.size, info.mode = len(record), 0o644
            archive.addfile(info, io.BytesIO(record))  # first: read without unpacking the rest
            for path in sorted(prefix.rglob("*")):
                relative = path.relative_to(prefix)
                if _is_interpreter_link(relative) or "__pycache__" in relative.parts:
                    continue
                archive.add(path, arcname=str(relative), recursive=False)
        os.replace(temporary, output)
    return output


def _is_interpreter_link(relative: Path) -> bool:
    """Files recreated on unpack: pyvenv.cfg and bin/python* (absolute links to this machine)."""
    if relative == Path("pyvenv.cfg"):
        return True
    return relative.parent == Path("bin") and relative.name.startswith("python")
