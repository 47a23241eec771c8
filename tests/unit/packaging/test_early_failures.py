"""Builds fail early and clearly: the tag before any work, an existing Dockerfile is used
(or kept, by `mlpack dockerfile`), CPU-only wheels where a CPU variant exists."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlpack.cli import create_app
from mlpack.environments.pack import BuildError
from mlpack.environments.requirements import cpu_variants
from mlpack.packaging.references import base_images, check_tag

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "multi-env"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLE, tmp_path / "multi-env")
    return tmp_path / "multi-env"


@pytest.mark.parametrize(
    "tag", ["my-models:0.1", "localhost:5000/team/models:v1", "a/b/c", "models", "x_y.z:1.0-rc"]
)
def test_valid_tags(tag: str) -> None:
    check_tag(tag)


@pytest.mark.parametrize(
    "tag", ["My-Models:1", "models:", "models:bad tag", "-models", "models:" + "1" * 129, "a//b"]
)
def test_invalid_tags(tag: str) -> None:
    with pytest.raises(BuildError, match="not a valid image name"):
        check_tag(tag)


def test_bad_tag_is_refused_before_any_work(
    folder: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Before: refused by the engine after the wheels and the context upload."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    result = CliRunner().invoke(create_app(), ["build", str(folder), "-t", "Bad Tag:1"])
    assert result.exit_code == 2, result.output
    assert "not a valid image name" in result.output
    assert "Docker engine" not in result.output and not (tmp_path / "cache").exists()


def test_base_images_of_a_dockerfile() -> None:
    text = (
        "ARG BASE_IMAGE=python:3.11\nARG OTHER\nFROM ${BASE_IMAGE} AS environments\n"
        "FROM environments AS again\nFROM --platform=linux/amd64 busybox:1 AS tools\n"
        "FROM $BASE_IMAGE\nFROM scratch\n"
    )
    assert base_images(text, "default:1") == ["python:3.11", "busybox:1"]
    assert base_images(text, "default:1", {"BASE_IMAGE": "mine:2"}) == ["mine:2", "busybox:1"]
    assert base_images("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n", "default:1") == ["default:1"]


def test_dockerfile_refuses_to_overwrite_without_force(folder: Path) -> None:
    app = create_app()
    (folder / "Dockerfile").write_text("FROM mine\n# customised\n")
    result = CliRunner().invoke(app, ["dockerfile", str(folder)])
    assert result.exit_code == 1 and "--force" in result.output
    assert (folder / "Dockerfile").read_text() == "FROM mine\n# customised\n"
    (folder / ".dockerignore").write_text("mine\n")
    result = CliRunner().invoke(app, ["dockerfile", str(folder), "--force", "-i"])
    assert result.exit_code == 0, result.output
    assert (folder / "Dockerfile").read_text().startswith("# Rendered by mlpack")
    assert (folder / ".dockerignore").read_text() != "mine\n"
    result = CliRunner().invoke(app, ["dockerfile", str(folder), "-i"])
    assert result.exit_code == 1 and ".dockerignore" in result.output


def test_cpu_variants() -> None:
    text = "xgboost>=2.0\nXGBoost[scikit-learn]==2.1 ; python_version>'3'\nxgboostlike\n  xgboost\n"
    swapped = cpu_variants(text)
    if sys.platform == "linux":
        assert swapped == (
            "xgboost-cpu>=2.0\nxgboost-cpu[scikit-learn]==2.1 ; python_version>'3'\n"
            "xgboostlike\n  xgboost-cpu\n"
        )
    else:
        assert swapped == text


@pytest.mark.skipif(sys.platform != "linux", reason="xgboost-cpu wheels are Linux-only")
def test_image_wheels_are_cpu_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: `xgboost` pulled nvidia-nccl-cu12 (351 MB) into CPU images."""
    from mlpack.packaging.wheels import wheels_for

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("xgboost>=2.0\n")
    wheels = sorted(p.name for p in wheels_for(requirements, tmp_path / "wheels").iterdir())
    assert any(name.startswith("xgboost_cpu-") for name in wheels), wheels
    assert not any(name.startswith(("xgboost-", "nvidia")) for name in wheels), wheels
