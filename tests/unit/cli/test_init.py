"""``mlpack init`` through Typer's CliRunner: flags, prompts, messages, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlpack.cli import create_app
from mlpack.cli import init as init_command

runner = CliRunner()


def test_list_shows_every_template_with_a_description() -> None:
    result = runner.invoke(create_app(), ["init", "--list"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines] == [
        "custom",
        "huggingface",
        "lightgbm",
        "mlflow",
        "onnx",
        "sklearn",
        "stream",
        "xgboost",
    ]
    assert all(len(line.split()) > 3 for line in lines)


def test_no_input_uses_flags_and_defaults(tmp_path: Path) -> None:
    target = tmp_path / "Churn Model"
    result = runner.invoke(create_app(), ["init", str(target), "-t", "sklearn", "--no-input"])
    assert result.exit_code == 0, result.output
    settings = json.loads((target / "model-settings.json").read_text())
    assert settings["name"] == "churn-model" and "max_batch_size" not in settings
    assert "python train.py" in result.output and "mlpack start ." in result.output


def test_name_and_batching_flags(tmp_path: Path) -> None:
    result = runner.invoke(
        create_app(),
        [
            "init",
            str(tmp_path / "p"),
            "--template",
            "custom",
            "--name",
            "doubler",
            "--batching",
            "--no-input",
        ],
    )
    assert result.exit_code == 0, result.output
    settings = json.loads((tmp_path / "p" / "model-settings.json").read_text())
    assert settings["name"] == "doubler" and settings["max_batch_size"] == 32


def test_without_a_folder_the_name_is_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(create_app(), ["init", "--name", "scorer", "--no-input"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "scorer" / "model-settings.json").read_text())["name"] == "scorer"


def test_prompts_on_a_tty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(init_command, "_stdin_is_tty", lambda: True)
    # An unknown template is asked again.
    result = runner.invoke(
        create_app(), ["init", str(tmp_path / "q")], input="fraud\ntf\nxgboost\ny\n"
    )
    assert result.exit_code == 0, result.output
    assert "Model name [q]" in result.output
    assert "Template (custom, huggingface, lightgbm, " in result.output
    assert "'tf' is not one of" in result.output
    settings = json.loads((tmp_path / "q" / "model-settings.json").read_text())
    assert settings["name"] == "fraud" and settings["max_batch_size"] == 32
    assert settings["implementation"] == "mlpack_xgboost.XGBoostModel"


def test_no_input_wins_over_a_tty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(init_command, "_stdin_is_tty", lambda: True)
    result = runner.invoke(create_app(), ["init", str(tmp_path / "r"), "--no-input"])
    assert result.exit_code == 0 and "Model name" not in result.output


def test_refuses_a_non_empty_folder_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = runner.invoke(create_app(), ["init", str(tmp_path), "--no-input"])
    assert result.exit_code == 2
    assert "is not empty" in result.output and "--force" in result.output
    assert not (tmp_path / "model-settings.json").exists()
    forced = runner.invoke(create_app(), ["init", str(tmp_path), "--no-input", "--force"])
    assert forced.exit_code == 0, forced.output
    assert (tmp_path / "model-settings.json").is_file() and (
        tmp_path / "notes.txt"
    ).read_text() == "mine"


def test_unknown_template_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(
        create_app(), ["init", str(tmp_path / "s"), "-t", "tensorflow", "--no-input"]
    )
    assert result.exit_code == 2
    assert "unknown template 'tensorflow'" in result.output
    assert not (tmp_path / "s").exists()
