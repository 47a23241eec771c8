"""The distribution name, and requirement files that would pull in the unrelated ``mlpack``."""

from __future__ import annotations

import tomllib
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlpack import scaffold
from mlpack.cli import create_app
from mlpack.distribution import (
    DISTRIBUTION,
    ForeignRequirementError,
    check_requirements_file,
    foreign_requirements,
    install_source,
)
from tests.helpers.server import REPO

TEMPLATES = ["custom", "sklearn", "xgboost", "lightgbm", "onnx"]


def test_the_distribution_is_not_called_mlpack() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["name"] == DISTRIBUTION == "mlpack-serve"
    assert project["scripts"]["mlpack"] == "mlpack.cli:main"


def test_pyproject_license_is_an_spdx_string_setuptools_reads_without_warnings() -> None:
    setuptools = pytest.importorskip("setuptools", minversion="77")
    from setuptools.config.pyprojecttoml import apply_configuration

    assert (
        tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"] == "Apache-2.0"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        distribution = apply_configuration(setuptools.Distribution(), REPO / "pyproject.toml")
    assert distribution.metadata.license_expression == "Apache-2.0"


@pytest.mark.parametrize(
    ("line", "foreign"),
    [
        ("mlpack>=0.1.0", True),
        ("mlpack[sklearn]>=0.1.0", True),
        ("MLPack == 4.8.0  # comment", True),
        ("mlpack-serve>=0.1", False),
        ("mlpack_serve", False),
        ("mlpack @ file:///src/mlpack", False),
        ("# mlpack>=0.1", False),
        ("-r other.txt", False),
        ("numpy", False),
    ],
)
def test_foreign_requirement_lines(line: str, foreign: bool) -> None:
    assert bool(foreign_requirements(f"numpy\n{line}\n")) == foreign


@pytest.mark.parametrize("template", TEMPLATES)
def test_generated_requirements_never_name_mlpack_or_pytest(template: str) -> None:
    files = scaffold.render_project(scaffold.ProjectOptions(template=template, name="m"))
    requirements = files["requirements.txt"]
    assert foreign_requirements(requirements) == []
    names = [
        line.split("[")[0].split("=")[0].strip()
        for line in requirements.splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert "mlpack" not in names and "pytest" not in names and names


def test_generated_readme_installs_the_tool_from_where_it_is_and_pytest() -> None:
    readme = scaffold.render_project(scaffold.ProjectOptions(template="custom", name="m"))[
        "README.md"
    ]
    setup = readme.split("## 1. Set up", 1)[1].split("```", 2)[1]
    assert f"pip install {install_source()}" in setup
    assert "pip install -r requirements.txt pytest" in setup
    # This checkout is what the tests run: the README names it, not a registry project.
    assert str(REPO) in install_source()


def test_check_requirements_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text("numpy\nmlpack[sklearn]>=0.1.0\n")
    with pytest.raises(ForeignRequirementError) as caught:
        check_requirements_file(path)
    assert "requirements.txt:2" in caught.value.message and DISTRIBUTION in caught.value.message


def _old_project(tmp_path: Path) -> Path:
    """A project as older `mlpack init` wrote it (requirements name `mlpack`)."""
    project = tmp_path / "old"
    files = scaffold.render_project(scaffold.ProjectOptions(template="custom", name="old"))
    scaffold.write_project(project, files)
    (project / "requirements.txt").write_text("mlpack>=0.1.0\nnumpy\npytest\n")
    return project


def test_build_refuses_a_requirement_on_mlpack_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _old_project(tmp_path)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    result = CliRunner().invoke(create_app(), ["build", str(project), "-t", "old:1"])
    assert result.exit_code == 1, result.output
    assert "unrelated C++ library" in result.output and "Docker" not in result.output
    assert not (project / ".mlpack-build").exists()


def test_env_pack_refuses_a_requirement_on_mlpack(tmp_path: Path) -> None:
    project = _old_project(tmp_path)
    result = CliRunner().invoke(create_app(), ["env", "pack", str(project)])
    assert result.exit_code == 1 and "unrelated C++ library" in result.output
    assert not (project / "environment.tar.gz").exists()
