"""Rendering the Dockerfile and .dockerignore: pure, no Docker needed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlpack.build.dockerfile import plan_image, render_dockerfile, render_dockerignore
from mlpack.build.envs import BuildError, conda_tool, pack_conda
from mlpack.cli import create_app

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "multi-env"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLE, tmp_path / "multi-env")
    return tmp_path / "multi-env"


def test_plan_finds_models_and_their_environments(folder: Path) -> None:
    plan = plan_image(folder, "base:1")
    assert [(m.name, m.folder) for m in plan.models] == [
        ("table-new", "table_new"),
        ("table-old", "table_old"),
    ]
    assert [(e.key, e.kind, e.prefix) for e in plan.environments] == [
        ("table_new", "requirements", "/opt/mlpack/envs/table_new"),
        ("table_old", "requirements", "/opt/mlpack/envs/table_old"),
    ]
    assert plan.settings_file == "settings.json" and plan.root_requirements is None


def test_dockerfile_layers_and_runtime_contract(folder: Path) -> None:
    text = render_dockerfile(plan_image(folder, "base:1"))
    assert text == render_dockerfile(plan_image(folder, "base:1"))  # deterministic
    lines = text.splitlines()
    assert "ARG BASE_IMAGE=base:1" in lines
    assert "EXPOSE 8080 8081 8082" in lines
    assert "USER 1000" in lines
    assert 'io.mlpack.models="table-new,table-old"' in text
    assert "/v2/health/ready" in text and "HEALTHCHECK" in text and "curl" not in text
    assert "useradd --uid 1000 --gid 0" in text and "chmod -R g=u" in text
    # Environments come before mlpack itself, and model code comes last.
    position = {
        key: text.index(key)
        for key in (
            ".mlpack-build/server/deps",
            ".mlpack-build/envs/table_old",
            ".mlpack-build/server/mlpack",
            "COPY --chown=1000:0 models",
        )
    }
    assert list(position.values()) == sorted(position.values())
    assert "--no-index" in text and "pip download" not in text


def test_settings_ports_are_exposed(folder: Path) -> None:
    (folder / "settings.json").write_text(json.dumps({"http_port": 9000, "grpc_port": 9001}))
    text = render_dockerfile(plan_image(folder))
    assert "EXPOSE 9000 9001 8082" in text and "'9000'" in text
    assert "python:3.11-slim-bookworm" in text


def test_root_requirements_are_image_wide(folder: Path) -> None:
    (folder / "requirements.txt").write_text("tabulate\n")
    plan = plan_image(folder)
    assert plan.root_requirements == folder / "requirements.txt"
    assert len(plan.environments) == 2


def test_dockerignore(folder: Path) -> None:
    text = render_dockerignore(plan_image(folder))
    assert "**/__pycache__" in text and "**/.git" in text and "**/.mlpack" in text


def test_conda_needs_a_conda(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(folder))
    with pytest.raises(BuildError, match="needs conda, mamba or micromamba"):
        conda_tool()
    (folder / "table_old" / "requirements.txt").unlink()
    (folder / "table_old" / "environment.yml").write_text("dependencies: [python=3.11]\n")
    plan = plan_image(folder)
    assert [e.kind for e in plan.environments] == ["requirements", "conda"]
    with pytest.raises(BuildError, match="needs conda"):
        pack_conda(folder / "table_old" / "environment.yml", folder / "out.tar.gz")


def test_cli_dockerfile_writes_files(folder: Path) -> None:
    result = CliRunner().invoke(create_app(), ["dockerfile", str(folder), "-i"])
    assert result.exit_code == 0, result.output
    assert (folder / "Dockerfile").read_text().startswith("# Rendered by mlpack")
    assert (folder / ".dockerignore").is_file()


def test_cli_usage_errors(folder: Path, tmp_path: Path) -> None:
    app = create_app()
    assert CliRunner().invoke(app, ["build", str(folder)]).exit_code == 2
    result = CliRunner().invoke(app, ["build", str(folder), "-t", "x", "--build-arg", "novalue"])
    assert result.exit_code == 2 and "KEY=VALUE" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(app, ["dockerfile", str(empty)])
    assert result.exit_code == 1 and "no model-settings.json" in result.output
    result = CliRunner().invoke(app, ["env", "pack", str(empty)])
    assert result.exit_code == 2 and "requirements.txt" in result.output


def test_cli_build_without_engine_is_clear(
    folder: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    result = CliRunner().invoke(create_app(), ["build", str(folder), "-t", "x:1"])
    assert result.exit_code == 1
    assert "no Docker engine reachable" in result.output and "Traceback" not in result.output
