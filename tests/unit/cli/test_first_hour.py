"""The small cuts a new user met in the first hour: help noise, ports, hints, sizes."""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from mlpack.cli import create_app
from mlpack.cli.sizes import human_size

runner = CliRunner()


def _commands() -> list[list[str]]:
    """Every command path: [], ["init"], ["env", "pack"], ..."""
    paths: list[list[str]] = [[]]
    root = typer.main.get_command(create_app())
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        paths.append([name])
        for sub in getattr(command, "commands", {}):
            paths.append([name, sub])
    return paths


@pytest.mark.parametrize("path", _commands(), ids=lambda p: " ".join(p) or "mlpack")
def test_help_shows_no_value_type_after_plain_switches(path: list[str]) -> None:
    result = runner.invoke(create_app(), [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "--help" in result.output
    assert "<bool>" not in result.output
    if path == ["infer"]:
        assert not re.search(r"--verbose\s+-v\s+<int>", result.output)
        assert "<str>" in result.output  # options that take a value still say what


@pytest.mark.parametrize("flag", ["--http-port", "--grpc-port", "--metrics-port"])
def test_out_of_range_port_is_a_usage_error(flag: str, tmp_path: Path) -> None:
    result = runner.invoke(create_app(), ["start", str(tmp_path), flag, "99999"])
    assert result.exit_code == 2
    assert "65535" in result.output and "Traceback" not in result.output


def test_out_of_range_port_in_settings_json_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "settings.json").write_text(json.dumps({"http_port": 70000}))
    result = runner.invoke(create_app(), ["start", str(tmp_path)])
    assert result.exit_code == 2
    assert "http_port" in result.output and "65535" in result.output


def test_next_steps_quote_the_folder_and_install_pytest(tmp_path: Path) -> None:
    target = tmp_path / "my model"
    result = runner.invoke(
        create_app(), ["init", str(target), "--template", "custom", "--no-input"]
    )
    assert result.exit_code == 0, result.output
    assert f"cd '{target}'" in result.output
    steps = [line.strip() for line in result.output.splitlines()]
    assert steps.index("pip install -r requirements.txt pytest") < steps.index("pytest")


def test_init_t_is_the_old_spelling_of_template(tmp_path: Path) -> None:
    result = runner.invoke(
        create_app(), ["init", str(tmp_path / "p"), "-t", "sklearn", "--no-input"]
    )
    assert result.exit_code == 0, result.output
    assert "use --template" in result.output
    settings = json.loads((tmp_path / "p" / "model-settings.json").read_text())
    assert settings["implementation"] == "mlpack_sklearn.SKLearnModel"
    help_text = runner.invoke(create_app(), ["init", "--help"], env={"COLUMNS": "200"}).output
    assert "--template" in help_text and not re.search(r"\s-t\s", help_text)


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, "0 B"),
        (812, "812 B"),
        (4_200, "4.20 kB"),
        (51_300_000, "51.3 MB"),
        (2_400_000_000, "2.40 GB"),
    ],
)
def test_human_size(size: int, shown: str) -> None:
    assert human_size(size) == shown


def test_env_pack_of_a_small_environment_prints_its_real_size(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "requirements.txt").write_text("# nothing beyond the standard library\n")
    result = runner.invoke(create_app(), ["env", "pack", str(model)])
    assert result.exit_code == 0, result.output
    tarball = model / "environment.tar.gz"
    assert tarfile.is_tarfile(tarball)
    assert "0.0 MB" not in result.output
    assert f"({human_size(tarball.stat().st_size)})" in result.output
