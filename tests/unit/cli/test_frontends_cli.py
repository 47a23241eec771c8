"""``mlpack start --frontends``: parsing, and the plan with front-ends sharing pools."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlpack.cli import create_app
from mlpack.cli.errors import USAGE_ERROR
from tests.helpers.server import ASSETS

runner = CliRunner()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def echo_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "serve"
    shutil.copytree(ASSETS / "models" / "echo", folder / "echo")
    return folder


def _errors(output: str) -> list[str]:
    assert "Traceback" not in output
    return [line for line in output.splitlines() if "rror" in line]


@pytest.mark.parametrize("value", ["two", "0", "-1"])
def test_a_bad_frontends_value_is_a_usage_error(echo_folder: Path, value: str) -> None:
    result = runner.invoke(create_app(), ["start", str(echo_folder), "--frontends", value])
    assert result.exit_code == USAGE_ERROR
    assert "frontends" in result.output or "http_workers" in result.output, result.output


def test_plan_with_frontends_and_pools_lists_each_pool_once(echo_folder: Path) -> None:
    settings = echo_folder / "echo" / "model-settings.json"
    data = json.loads(settings.read_text())
    settings.write_text(json.dumps({**data, "parallel_workers": 2}))
    result = runner.invoke(
        create_app(),
        ["start", str(echo_folder), "--frontends", "2", "--parallel-workers", "1", "--plan"],
    )
    assert result.exit_code == 0, result.output
    assert "2 front-end processes: each worker pool below is shared by all of them" in (
        result.output
    )
    assert result.output.count("pool model:echo: 2 processes") == 1, result.output


def test_help_lists_frontends() -> None:
    result = runner.invoke(create_app(), ["start", "--help"])
    assert result.exit_code == 0 and "--frontends" in result.output
