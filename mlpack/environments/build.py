"""Building a model's environment on this machine, for ``mlpack start``.

A ``requirements.txt`` becomes a venv under ``environments_dir/requirements-<hash>``,
keyed by the file's content (after CPU-only swaps), the Python version and the platform:
a second start with the same file reuses it, an edited file gets a new one. ``uv`` fills
it where it is installed (``pip install 'mlpack-serve[envs]'``; much faster), pip
otherwise; the installer's own progress goes to the terminal (stderr).

A conda file becomes a conda environment made by conda, mamba or micromamba, which must
be on PATH (``conda_tool`` says what to install otherwise).

Each build happens in a private folder renamed into place, then a completion marker
(``BUILT_MARKER``) is written last: a folder without it is never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from ..errors import BuildError
from .requirements import cpu_variants, without_provided
from .unpack import Environment, exclusive_lock, find_python

logger = logging.getLogger("mlpack.environments")

BUILT_MARKER = ".mlpack-built.json"
CONDA_TOOLS = ("micromamba", "mamba", "conda")
Installer = Literal["uv", "pip"]


def uv_binary() -> str | None:
    """The ``uv`` executable: the ``uv`` Python package's, else one on PATH, else None."""
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def pick_installer(preferred: Installer | None = None) -> Installer:
    """``preferred``, else uv when it can be found, else pip."""
    if preferred is not None:
        return preferred
    return "uv" if uv_binary() else "pip"


def python_tag() -> str:
    return "{}.{}".format(*sys.version_info[:2])


def effective_requirements(requirements: Path, provided: tuple[str, ...] = ()) -> str:
    """What is installed for ``requirements``: CPU-only swaps, packages the server provides
    (``provided``, at an allowed version) left out."""
    return without_provided(cpu_variants(requirements.read_text()), provided)


def create_venv(
    prefix: Path,
    requirements: Path,
    installer: Installer | None = None,
    quiet: bool = False,
    provided: tuple[str, ...] = (),
) -> Installer:
    """A venv at ``prefix`` for this Python, filled from ``requirements``; returns the installer.

    Relative entries in the file resolve against its folder. Output goes to stderr unless
    ``quiet``; a failure raises ``BuildError`` with the installer's last lines.
    """
    tool = pick_installer(installer)
    text = effective_requirements(requirements, provided)
    with tempfile.TemporaryDirectory(prefix="mlpack-req-") as scratch:
        effective = Path(scratch) / "requirements.txt"
        effective.write_text(text)
        if tool == "uv":
            uv = uv_binary()
            if uv is None:
                raise BuildError("uv is not installed: pip install 'mlpack-serve[envs]'")
            steps = [
                [uv, "venv", "--quiet", "--python", sys.executable, str(prefix)],
                [
                    uv,
                    "pip",
                    "install",
                    "--python",
                    str(prefix / "bin" / "python"),
                    "-r",
                    str(effective),
                ],
            ]
        else:
            steps = [
                [sys.executable, "-m", "venv", "--without-pip", str(prefix)],
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "--disable-pip-version-check",
                    "--python",
                    str(prefix / "bin" / "python"),
                    "install",
                    "--progress-bar",
                    "off",
                    "-r",
                    str(effective),
                ],
            ]
        for step in steps:
            _run(step, requirements, quiet)
    return tool


def _run(command: list[str], requirements: Path, quiet: bool) -> None:
    passthrough = not quiet and _has_fileno(sys.stderr)
    result = subprocess.run(
        command,
        cwd=requirements.parent,
        stdout=sys.stderr if passthrough else subprocess.PIPE,
        stderr=sys.stderr if passthrough else subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    if not quiet and not passthrough and result.stdout:
        sys.stderr.write(result.stdout)  # a captured stderr (e.g. a test runner's)
    if result.returncode != 0:
        tail = "\n".join((result.stdout or "").strip().splitlines()[-15:])
        name = Path(command[0]).name
        raise BuildError(
            f"building an environment from {requirements} failed ({name} exited with "
            f"{result.returncode})" + (f":\n{tail}" if tail else "; its output is above")
        )


def _has_fileno(stream: object) -> bool:
    try:
        stream.fileno()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return False
    return True


def requirements_key(requirements: Path, provided: tuple[str, ...] = ()) -> str:
    """The cache key of the environment ``requirements`` describes (content, Python, platform)."""
    text = effective_requirements(requirements, provided)
    return hashlib.sha256(f"{python_tag()}|{sys.platform}|{text}".encode()).hexdigest()[:24]


def build_requirements_environment(
    requirements: Path,
    environments_dir: Path,
    installer: Installer | None = None,
    provided: tuple[str, ...] = (),
) -> Environment:
    """The venv for ``requirements`` under ``environments_dir``: reused, or built once.

    ``provided``: packages the server provides, not installed when its version is allowed.
    """
    target = environments_dir / f"requirements-{requirements_key(requirements, provided)}"
    return _build_once(
        target,
        requirements,
        lambda prefix: create_venv(prefix, requirements, installer, provided=provided),
    )


def conda_tool() -> str:
    """The first of micromamba / mamba / conda on PATH, else a ``BuildError``: what to install."""
    for tool in CONDA_TOOLS:
        found = shutil.which(tool)
        if found:
            return found
    raise BuildError(
        "this model has a conda environment file, which needs conda, mamba or micromamba on "
        "PATH; install one (e.g. micromamba: https://mamba.readthedocs.io), or use a "
        "requirements.txt, or pack the environment elsewhere and ship environment.tar.gz"
    )


def create_conda(prefix: Path, environment_file: Path) -> str:
    """Create the conda environment ``environment_file`` describes at ``prefix``."""
    tool = conda_tool()
    if Path(tool).name == "micromamba":
        command = [tool, "create", "--yes", "-p", str(prefix), "-f", str(environment_file)]
    else:
        command = [tool, "env", "create", "--yes", "-p", str(prefix), "-f", str(environment_file)]
    _run(command, environment_file, quiet=False)
    return Path(tool).name


def build_conda_environment(environment_file: Path, environments_dir: Path) -> Environment:
    """The conda environment for ``environment_file`` under ``environments_dir`` (built once)."""
    conda_tool()  # fail before taking any lock
    digest = hashlib.sha256(environment_file.read_bytes()).hexdigest()[:24]
    target = environments_dir / f"conda-{digest}"
    return _build_once(
        target, environment_file, lambda prefix: create_conda(prefix, environment_file)
    )


def _build_once(target: Path, source: Path, make: Callable[[Path], str]) -> Environment:
    target.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(target.parent / f".{target.name}.lock"):
        if (target / BUILT_MARKER).is_file():
            logger.info("environment for %s: reusing %s", source, target)
            return Environment(target, find_python(target))
        if target.exists():
            logger.warning("environment %s is half-built: building it again", target)
            shutil.rmtree(target)
        logger.info("environment for %s: building %s (installer output follows)", source, target)
        started = time.perf_counter()
        # Built at its final path (venv scripts hold absolute paths), marked complete last.
        try:
            tool = make(target)
            seconds = time.perf_counter() - started
            marker = {"source": str(source), "tool": tool, "seconds": round(seconds, 2)}
            temporary = target / f"{BUILT_MARKER}.tmp"
            temporary.write_text(json.dumps(marker))
            os.replace(temporary, target / BUILT_MARKER)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        logger.info("environment for %s: built with %s in %.1fs", source, tool, seconds)
    return Environment(target, find_python(target))
