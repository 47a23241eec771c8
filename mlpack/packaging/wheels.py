"""Wheels made on the host for an image: the engine installs them with ``--no-index``.

``requirements.txt`` → ``pip wheel`` (downloads wheels, builds sdists) into the build
context, so the engine needs no network. Wheels are cached on the host per requirements
file (and Python, platform), so a rebuild does not resolve again. A requirement with a
CPU-only twin is swapped for it first (``xgboost`` → ``xgboost-cpu`` on Linux: no CUDA
libraries in CPU images).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from ..environments.pack import python_tag, run_pip
from ..environments.requirements import cpu_variants


def cache_dir() -> Path:
    """Where wheels made on the host are kept between builds."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlpack"


def wheels_for(requirements: Path, destination: Path) -> Path:
    """Wheels for every requirement in ``requirements`` (cached), copied into ``destination``."""
    text = cpu_variants(requirements.read_text())
    key = hashlib.sha256(f"{python_tag()}|{sys.platform}|{text}".encode()).hexdigest()[:20]
    cached = cache_dir() / "wheels" / key
    if not (cached / ".complete").is_file():
        staging = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=_ensure(cache_dir() / "wheels")))
        try:
            lines = [
                line for line in text.splitlines() if line.strip() and not line.startswith("#")
            ]
            if lines:
                # The file itself where nothing was swapped (its relative entries still resolve).
                effective = requirements
                if text != requirements.read_text():
                    effective = staging / "requirements.txt"
                    effective.write_text(text)
                run_pip(
                    ["wheel", "--quiet", "-r", str(effective), "--wheel-dir", str(staging)],
                    f"making wheels for {requirements}",
                )
                if effective != requirements:
                    effective.unlink()
            (staging / ".complete").write_text(text)
            shutil.rmtree(cached, ignore_errors=True)
            os.rename(staging, cached)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    destination.mkdir(parents=True, exist_ok=True)
    for wheel in sorted(cached.glob("*.whl")):
        link_or_copy(wheel, destination / wheel.name)
    return destination


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link ``source`` to ``target`` (a copy across file systems); keep an existing target."""
    if target.exists():
        return
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
