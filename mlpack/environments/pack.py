"""Packing environments: requirements files and conda files → tarballs.

* ``environment.yml`` / ``conda.yaml``: created with conda, mamba or micromamba and
  packed with conda-pack; without one of those this fails up front, saying so.
* ``pack_requirements``: a relocatable tarball of a venv for ``mlpack start``. A venv
  is not relocatable (``pyvenv.cfg``, interpreter links and script shebangs hold
  absolute paths), so the tarball carries ``lib/`` and scripts but no interpreter
  links, plus ``mlpack-venv.json`` (Python version, original prefix); unpacking
  recreates the links for the server's Python and rewrites shebangs
  (``mlpack.environments.unpack.relocate_venv``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from ..errors import BuildError as BuildError  # defined in the error tree; re-exported
from .unpack import VENV_MANIFEST

CONDA_TOOLS = ("micromamba", "mamba", "conda")


def python_tag() -> str:
    return "%d.%d" % sys.version_info[:2]


def run_pip(arguments: list[str], what: str) -> None:
    """Run pip with this interpreter; a failure becomes a ``BuildError`` with pip's output."""
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *arguments]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        detail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise BuildError(f"{what} failed (pip {' '.join(arguments[:1])}):\n{detail}")


def conda_tool() -> str:
    """The first of micromamba / mamba / conda on PATH, or a ``BuildError`` saying what to install."""
    for tool in CONDA_TOOLS:
        found = shutil.which(tool)
        if found:
            return found
    raise BuildError(
        "this model has a conda environment file, which needs conda, mamba or micromamba on PATH "
        "(and conda-pack); install one (e.g. https://mamba.readthedocs.io micromamba), or use a "
        "requirements.txt, or pack the environment elsewhere and ship environment.tar.gz"
    )


def pack_conda(environment_file: Path, output: Path) -> Path:
    """Create the conda environment described by ``environment_file`` and pack it with conda-pack."""
    tool = conda_tool()
    with tempfile.TemporaryDirectory(prefix="mlpack-conda-") as scratch:
        prefix = Path(scratch) / "env"
        command = [tool, "env", "create", "--yes", "-p", str(prefix), "-f", str(environment_file)]
        if Path(tool).name == "micromamba":
            command = [tool, "create", "--yes", "-p", str(prefix), "-f", str(environment_file)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise BuildError(f"{Path(tool).name} could not create {environment_file}:\n{result.stderr[-2000:]}")
        try:
            import conda_pack
        except ImportError:
            raise BuildError("packing a conda environment needs conda-pack: pip install conda-pack") from None
        output.parent.mkdir(parents=True, exist_ok=True)
        conda_pack.pack(prefix=str(prefix), output=str(output), force=True, ignore_missing_files=True)
    return output


def pack_requirements(requirements: Path, output: Path) -> Path:
    """Build a venv from ``requirements`` and write it as a relocatable tarball to ``output``."""
    with tempfile.TemporaryDirectory(prefix="mlpack-pack-") as scratch:
        prefix = Path(scratch) / "env"
        result = subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(prefix)], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise BuildError(f"could not create a venv: {result.stderr.strip()}")
        run_pip(
            ["--python", str(prefix / "bin" / "python"), "install", "--quiet", "-r", str(requirements)],
            f"installing {requirements}",
        )
        manifest = {"python": python_tag(), "prefix": str(prefix), "requirements": requirements.read_text()}
        (prefix / VENV_MANIFEST).write_text(json.dumps(manifest, indent=1))
        output.parent.mkdir(parents=True, exist_ok=True)
        temporary = output.with_name(output.name + ".tmp")
        with tarfile.open(temporary, "w:gz", compresslevel=6) as archive:
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
