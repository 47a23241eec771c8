"""Rendering the Dockerfile and .dockerignore: pure, no Docker needed."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import shutil
import sys
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlpack.cli import create_app
from mlpack.environments.pack import BuildError, conda_tool, pack_conda
from mlpack.packaging.dockerfile import render_dockerfile, render_dockerignore
from mlpack.packaging.plan import plan_image

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
    # `mlpack start` binds loopback by default; an image listens on every interface, explicitly.
    assert "MLPACK_HOST=0.0.0.0" in text
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


@pytest.fixture
def conda_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``micromamba`` on PATH, for planning only (planning checks it exists, never runs it)."""
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "micromamba").write_text("#!/bin/sh\nexit 1\n")
    (tools / "micromamba").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")


def test_conda_needs_a_conda_and_says_so_before_any_work(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(folder))
    with pytest.raises(BuildError, match="needs conda, mamba or micromamba"):
        conda_tool()
    (folder / "table_old" / "requirements.txt").unlink()
    (folder / "table_old" / "environment.yml").write_text("dependencies: [python=3.11]\n")
    with pytest.raises(BuildError, match="needs conda, mamba or micromamba"):
        plan_image(folder)
    with pytest.raises(BuildError, match="needs conda"):
        pack_conda(folder / "table_old" / "environment.yml", folder / "out.tar.gz")
    # `mlpack build` stops at planning: no engine, wheel or context work happens first.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{folder}/no-docker.sock")
    result = CliRunner().invoke(create_app(), ["build", str(folder), "-t", "x:1"])
    assert result.exit_code == 1 and "micromamba" in result.output
    assert "no Docker engine" not in result.output
    result = CliRunner().invoke(create_app(), ["env", "pack", str(folder / "table_old")])
    assert result.exit_code == 1 and "micromamba" in result.output


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


def _packed_tarball(path: Path) -> Path:
    """A small packed environment whose bin/python runs this interpreter."""
    script = f'#!/bin/sh\nexec {sys.executable} "$@"\n'.encode()
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo("bin/python")
        info.size, info.mode = len(script), 0o755
        archive.addfile(info, io.BytesIO(script))
    return path


def _with_kind(folder: Path, kind: str) -> Path:
    """``folder`` with table_old's environment given as ``kind``."""
    old = folder / "table_old"
    if kind == "tarball":
        (old / "requirements.txt").unlink()
        _packed_tarball(old / "environment.tar.gz")
    elif kind == "conda":
        (old / "requirements.txt").unlink()
        (old / "environment.yml").write_text("dependencies: [python=3.11]\n")
    return folder


@pytest.mark.usefixtures("conda_on_path")
def test_plan_is_final(folder: Path) -> None:
    plan = plan_image(_with_kind(folder, "conda"), "base:1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.environments[0].key = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.base_image = "other"  # type: ignore[misc]


@pytest.mark.usefixtures("conda_on_path")
@pytest.mark.parametrize("kind", ["requirements", "tarball", "conda"])
def test_cli_dockerfile_is_the_one_build_sends(folder: Path, kind: str) -> None:
    """`mlpack dockerfile` == what `mlpack build` renders after planning (and staging
    cannot change: the plan is frozen); every environment the image copies is made at
    the path it copies from."""
    from mlpack.packaging.image import _build_dockerfile

    _with_kind(folder, kind)
    result = CliRunner().invoke(create_app(), ["dockerfile", str(folder), "--base-image", "base:1"])
    assert result.exit_code == 0, result.output
    written = (folder / "Dockerfile").read_text()
    (folder / "Dockerfile").unlink()
    plan = plan_image(folder, "base:1")
    assert written == _build_dockerfile(plan, None)
    assert [e.kind for e in plan.environments] == ["requirements", kind]
    made = set(re.findall(r"python3 -m venv --without-pip (\S+)", written))
    made |= {
        f"{d}/{name}" for d, name in re.findall(r"--environments-dir (\S+) --name (\S+)", written)
    }
    copied = set(re.findall(r"COPY --from=environments --chown=\S+ (\S+/envs/\S+) ", written))
    assert copied == made == {"/opt/mlpack/envs/table_new", "/opt/mlpack/envs/table_old"}


def test_env_unpack_names_its_folder(tmp_path: Path) -> None:
    """The command the Dockerfile runs for packed environments unpacks where COPY looks."""
    tarball = _packed_tarball(tmp_path / "environment.tar.gz")
    envs = tmp_path / "envs"
    result = CliRunner().invoke(
        create_app(),
        ["env", "unpack", str(tarball), "--environments-dir", str(envs), "--name", "table_old"],
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(envs / "table_old")
    assert (envs / "table_old" / "bin" / "python").is_file()
