"""A generated project, set up as its README says in a clean venv with the real package index.

What gets installed must never be the unrelated ``mlpack`` library from the index: the
project's requirements list only the model's own dependencies, and the tool is installed
from where it really is (this checkout).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlpack import scaffold
from mlpack.distribution import DISTRIBUTION, normalise

pytestmark = pytest.mark.e2e


def _clean_environment() -> dict[str, str]:
    """The user's shell: no PYTHONPATH into this checkout, no MLPACK_* settings."""
    return {
        name: value
        for name, value in os.environ.items()
        if name not in ("PYTHONPATH", "VIRTUAL_ENV") and not name.startswith("MLPACK_")
    }


def _bash(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["bash", "-c", f"set -e\n{script}"],
        cwd=cwd,
        env=_clean_environment(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"{script}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _installed(venv: Path) -> set[str]:
    listing = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "list",
            "--format",
            "json",
            "--disable-pip-version-check",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=_clean_environment(),
    )
    return {normalise(item["name"]) for item in json.loads(listing.stdout)}


def test_readme_setup_in_a_clean_venv_installs_no_foreign_mlpack(tmp_path: Path) -> None:
    project = tmp_path / "my model"  # a space, as users' folders have
    files = scaffold.render_project(scaffold.ProjectOptions(template="custom", name="my-model"))
    scaffold.write_project(project, files)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    activate = f". '{venv}/bin/activate'"

    setup = files["README.md"].split("## 1. Set up", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    pip_lines = [
        line.split("  #", 1)[0].strip()
        for line in setup.splitlines()
        if line.strip().startswith("pip install")
    ]
    tool, requirements = pip_lines
    assert requirements == "pip install -r requirements.txt pytest"

    # The project's own requirements first: nothing called mlpack may come from the index.
    _bash(f"{activate}\n{requirements}", project)
    installed = _installed(venv)
    assert "mlpack" not in installed and "numpy" in installed and "pytest" in installed

    # Then the tool, from where the README says, and the project's test passes.
    _bash(f"{activate}\n{tool}", project)
    installed = _installed(venv)
    assert "mlpack" not in installed and normalise(DISTRIBUTION) in installed
    tested = _bash(f"{activate}\npytest -q -p no:cacheprovider", project)
    assert "passed" in tested.stdout
