"""``start``, ``build``/``dockerfile``, ``infer`` and ``env`` through Typer's CliRunner.

Parsing, messages and exit codes in-process; the real entry point and real servers are
exercised by tests/e2e. None of these cases gets as far as serving or calling Docker.
"""

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
    """``start`` configures logging before it finds models: leave the process as it was."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(create_app(), list(args))
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    return result.exit_code, result.output


def _one_line_error(output: str) -> str:
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, output
    return errors[0]


@pytest.fixture
def echo_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "serve"
    shutil.copytree(ASSETS / "models" / "echo", folder / "echo")
    return folder


# -- start -----------------------------------------------------------------------------


def test_start_needs_a_folder(tmp_path: Path) -> None:
    code, output = _invoke("start", str(tmp_path / "missing"))
    assert code == USAGE_ERROR
    assert "is not a folder" in _one_line_error(output)


def test_start_without_models_says_where_it_looked(tmp_path: Path) -> None:
    code, output = _invoke("start", str(tmp_path))
    assert code == USAGE_ERROR
    assert "no model-settings.json found below" in _one_line_error(output)


def test_start_rejects_a_bad_settings_file(echo_folder: Path) -> None:
    (echo_folder / "settings.json").write_text(json.dumps({"http_port": "not a port"}))
    code, output = _invoke("start", str(echo_folder))
    assert code == USAGE_ERROR
    assert "http_port" in _one_line_error(output)


def test_start_rejects_a_settings_file_that_is_not_json(echo_folder: Path) -> None:
    (echo_folder / "settings.json").write_text("{oops")
    code, output = _invoke("start", str(echo_folder))
    assert code == USAGE_ERROR
    assert "settings.json" in _one_line_error(output)


@pytest.mark.parametrize(
    "option", [["--http-port", "eighty"], ["--parallel-workers", "x"], ["--nope"]]
)
def test_start_option_errors_are_usage_errors(echo_folder: Path, option: list[str]) -> None:
    code, output = _invoke("start", str(echo_folder), *option)
    assert code == USAGE_ERROR
    assert "Traceback" not in output and option[0] in output


def test_start_help_lists_its_options() -> None:
    code, output = _invoke("start", "--help")
    assert code == 0
    for option in ("--http-port", "--grpc-port", "--metrics-port", "--parallel-workers"):
        assert option in output


# -- build / dockerfile ----------------------------------------------------------------


def test_build_needs_a_tag(echo_folder: Path) -> None:
    code, output = _invoke("build", str(echo_folder))
    assert code == USAGE_ERROR
    assert "-t/--tag" in _one_line_error(output)


def test_build_needs_a_folder(tmp_path: Path) -> None:
    code, output = _invoke("build", str(tmp_path / "missing"), "-t", "x:1")
    assert code == USAGE_ERROR
    assert "is not a folder" in _one_line_error(output)


def test_build_args_must_be_key_value(echo_folder: Path) -> None:
    code, output = _invoke("build", str(echo_folder), "-t", "x:1", "--build-arg", "NOVALUE")
    assert code == USAGE_ERROR
    assert "KEY=VALUE" in _one_line_error(output)


def test_dockerfile_writes_what_build_would_use(echo_folder: Path) -> None:
    code, output = _invoke("dockerfile", str(echo_folder), "-i", "--base-image", "base:1")
    assert code == 0, output
    text = (echo_folder / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE=base:1" in text and "FROM ${BASE_IMAGE}" in text
    assert (echo_folder / ".dockerignore").is_file()
    assert f"mlpack build {echo_folder} -t IMAGE" in output


# -- infer -----------------------------------------------------------------------------


def test_infer_needs_its_input_file(tmp_path: Path) -> None:
    code, output = _invoke(
        "infer", "-u", "127.0.0.1:1", "-m", "m", "-i", str(tmp_path / "no.jsonl"), "-o", "o"
    )
    assert code == USAGE_ERROR
    assert "not found" in _one_line_error(output)


def test_infer_rejects_a_malformed_header(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("{}\n")
    code, output = _invoke(
        "infer", "-u", "127.0.0.1:1", "-m", "m", "-i", str(source), "-o", "o", "-H", "nocolon"
    )
    assert code == USAGE_ERROR
    assert "'nocolon'" in _one_line_error(output)


@pytest.mark.parametrize(
    "args",
    [
        ["-m", "m", "-i", "in.jsonl", "-o", "o"],  # no -u
        ["-u", "127.0.0.1:1", "-m", "m", "-i", "in.jsonl", "-o", "o", "-t", "carrier-pigeon"],
        ["-u", "127.0.0.1:1", "-m", "m", "-i", "in.jsonl", "-o", "o", "-w", "0"],
    ],
    ids=["missing-url", "unknown-transport", "zero-workers"],
)
def test_infer_option_errors_are_usage_errors(args: list[str]) -> None:
    code, output = _invoke("infer", *args)
    assert code == USAGE_ERROR and "Traceback" not in output


def test_infer_reads_its_options_from_the_environment(tmp_path: Path) -> None:
    result = runner.invoke(
        create_app(),
        ["infer", "-i", str(tmp_path / "no.jsonl"), "-o", "o"],
        env={"MLPACK_INFER_URL": "127.0.0.1:1", "MLPACK_INFER_MODEL_NAME": "m"},
    )
    # Past option parsing (URL and model came from the environment): the file check fails.
    assert result.exit_code == USAGE_ERROR
    assert "not found" in _one_line_error(result.output)


# -- env -------------------------------------------------------------------------------


def test_env_pack_needs_a_requirements_or_environment_file(tmp_path: Path) -> None:
    code, output = _invoke("env", "pack", str(tmp_path))
    assert code == USAGE_ERROR
    assert "requirements.txt" in _one_line_error(output)


def test_env_unpack_of_a_file_that_is_not_a_tarball_is_one_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "environment.tar.gz"
    bogus.write_bytes(b"not a tarball")
    code, output = _invoke(
        "env", "unpack", str(bogus), "--environments-dir", str(tmp_path / "envs")
    )
    assert code == 1
    assert str(bogus.name) in _one_line_error(output)


def test_env_help_lists_pack_and_unpack() -> None:
    code, output = _invoke("env", "--help")
    assert code == 0 and "pack" in output and "unpack" in output
