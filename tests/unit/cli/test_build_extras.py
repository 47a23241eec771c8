"""Build-only dependencies live in the `build` extra: without them, `mlpack build` and a
conda `mlpack env pack` stop at once with a message naming the extra (not a traceback)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.server import REPO, checkout_pythonpath

EXAMPLE = REPO / "examples" / "multi-env"
# The CLI with the build-only packages unimportable, as in an install without the extra.
WITHOUT = (
    "import sys; sys.modules['docker'] = None; sys.modules['conda_pack'] = None; "
    "from mlpack.cli import main; sys.argv = ['mlpack', *sys.argv[1:]]; main()"
)


def _cli(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": checkout_pythonpath()}
    if path is not None:
        environment["PATH"] = path
    return subprocess.run(
        [sys.executable, "-c", WITHOUT, *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )


def test_build_names_the_extra(tmp_path: Path) -> None:
    folder = tmp_path / "served"
    shutil.copytree(EXAMPLE, folder)
    result = _cli("build", str(folder), "-t", "x:1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "mlpack-serve[build]" in result.stderr and "Traceback" not in result.stderr


def test_conda_pack_names_what_to_install(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "environment.yml").write_text("dependencies: [python=3.11]\n")
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in ("micromamba",):
        (tools / name).write_text("#!/bin/sh\nexit 1\n")
        (tools / name).chmod(0o755)
    result = _cli("env", "pack", str(model), path=str(tools))
    assert result.returncode == 1
    assert "mlpack-serve[build]" in result.stderr and "conda-pack" in result.stderr
    result = _cli("env", "pack", str(model), path=str(tmp_path))
    assert result.returncode == 1
    message = result.stderr
    assert "conda, mamba or micromamba" in message and "mlpack-serve[build]" in message


@pytest.mark.parametrize("extra", ["build", "envs"])
def test_extras_hold_the_build_only_packages(extra: str) -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"])
    assert "docker" not in base and "conda-pack" not in base and "uv" not in base.split()
    assert project["optional-dependencies"][extra]
