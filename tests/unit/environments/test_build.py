"""Building a requirements environment (uv, and the pip fallback), cached by content."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest

from mlpack.environments.build import (
    BUILT_MARKER,
    Installer,
    build_requirements_environment,
    pick_installer,
    uv_binary,
)

pytestmark = pytest.mark.timeout(600)


def _version(python: Path) -> str:
    return subprocess.run(
        [str(python), "-c", "import tabulate; print(tabulate.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_builds_once_then_reuses(
    installer: Installer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if installer == "uv" and uv_binary() is None:
        pytest.skip("uv is not installed (pip install 'mlpack-serve[envs]')")
    caplog.set_level(logging.INFO, "mlpack.environments")
    requirements = tmp_path / "model" / "requirements.txt"
    requirements.parent.mkdir()
    requirements.write_text("tabulate==0.8.10\n")
    envs = tmp_path / "envs"
    first = build_requirements_environment(requirements, envs, installer)
    assert _version(first.python) == "0.8.10"
    assert f'"tool": "{installer}"' in (first.root / BUILT_MARKER).read_text()
    again = build_requirements_environment(requirements, envs, installer)
    assert again.root == first.root
    messages = [r.getMessage() for r in caplog.records]
    assert sum(": building " in m for m in messages) == 1
    assert sum(": reusing " in m for m in messages) == 1
    # An edited file is another environment; the old one stays for whoever still uses it.
    requirements.write_text("tabulate==0.9.0\n")
    edited = build_requirements_environment(requirements, envs, installer)
    assert edited.root != first.root and _version(edited.python) == "0.9.0"


def test_half_built_folder_is_rebuilt(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# nothing\n")
    envs = tmp_path / "envs"
    first = build_requirements_environment(requirements, envs)
    (first.root / BUILT_MARKER).unlink()  # as if the build had been interrupted
    again = build_requirements_environment(requirements, envs)
    assert again.root == first.root and (again.root / BUILT_MARKER).is_file()


def test_failure_says_which_file(tmp_path: Path) -> None:
    from mlpack.errors import BuildError

    requirements = tmp_path / "requirements.txt"
    requirements.write_text("this-package-does-not-exist-mlpack-test==0.0.1\n")
    with pytest.raises(BuildError, match=r"requirements\.txt failed"):
        build_requirements_environment(requirements, tmp_path / "envs", pick_installer())
    assert not any((tmp_path / "envs").glob("requirements-*"))
