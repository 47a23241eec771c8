"""Log configuration: text and JSON lines, model context, user configs, the banner."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlpack._context import model_scope
from mlpack.errors import InvalidSettings
from mlpack.server.logging import banner_lines, configure_logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def test_text_lines_name_the_model() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    with model_scope("iris", "v1"):
        logging.getLogger("mlpack.test").info("hello %s", "there")
    logging.getLogger("mlpack.test").debug("hidden")
    line = stream.getvalue().strip()
    assert line.endswith("INFO  [mlpack.test] [model iris:v1] hello there")
    assert "hidden" not in stream.getvalue()


def test_debug_level() -> None:
    stream = io.StringIO()
    configure_logging(debug=True, stream=stream)
    logging.getLogger("mlpack.test").debug("shown")
    assert "DEBUG [mlpack.test] shown" in stream.getvalue()


def test_structured_lines_are_json_even_with_tracebacks() -> None:
    stream = io.StringIO()
    configure_logging(structured=True, stream=stream)
    logger = logging.getLogger("mlpack.test")
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        with model_scope("iris", ""):
            logger.exception("failed: %s", "multi\nline")
    logger.warning("plain")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "ERROR" and first["logger"] == "mlpack.test"
    assert first["message"] == "failed: multi\nline" and first["model"] == "iris"
    assert "RuntimeError: boom" in first["exc_info"] and "Traceback" in first["exc_info"]
    assert second["message"] == "plain" and "model" not in second and "exc_info" not in second


def test_logging_settings_dict_and_file(tmp_path: Path) -> None:
    target = tmp_path / "out.log"
    config = {
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(target)}},
        "loggers": {"custom": {"handlers": ["file"], "level": "WARNING", "propagate": False}},
    }
    configure_logging(stream=io.StringIO(), logging_settings=config)
    logging.getLogger("custom").warning("to the file")
    assert "to the file" in target.read_text()
    path = tmp_path / "logging.json"
    path.write_text(json.dumps({"version": 1, "loggers": {"other": {"level": "ERROR"}}}))
    configure_logging(stream=io.StringIO(), logging_settings=str(path))
    assert logging.getLogger("other").level == logging.ERROR


def test_bad_logging_settings_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidSettings, match="no such file"):
        configure_logging(stream=io.StringIO(), logging_settings=str(tmp_path / "missing.json"))
    with pytest.raises(InvalidSettings, match="invalid logging configuration"):
        configure_logging(
            stream=io.StringIO(), logging_settings={"handlers": {"x": {"class": "no.Such"}}}
        )


def test_banner_lists_listeners_and_models() -> None:
    lines = banner_lines(
        "mlpack",
        "1.0",
        [("REST", "http://0.0.0.0:8080"), ("metrics", "http://0.0.0.0:8082/metrics")],
        [("iris", "v1", "READY", ""), ("broken", None, "UNAVAILABLE", "load failed")],
    )
    assert lines[0] == "mlpack 1.0"
    assert any("REST" in line and ":8080" in line for line in lines)
    assert any("iris (v1)" in line and line.endswith("READY") for line in lines)
    assert any("broken" in line and line.endswith("UNAVAILABLE: load failed") for line in lines)


def test_debug_keeps_third_party_loggers_at_info() -> None:
    stream = io.StringIO()
    configure_logging(debug=True, stream=stream)
    logging.getLogger("grpc._cython.cygrpc").debug("Loaded running loop")
    logging.getLogger("mlpack.test").debug("ours")
    assert "Loaded running loop" not in stream.getvalue() and "ours" in stream.getvalue()
    configure_logging(debug=True, stream=stream, debug_loggers=["grpc"])
    logging.getLogger("grpc._cython.cygrpc").debug("Loaded running loop")
    assert "Loaded running loop" in stream.getvalue()
    configure_logging(stream=stream)
    configure_logging(debug_all=True, stream=stream)
    logging.getLogger("somelib").debug("anything")
    assert "anything" in stream.getvalue()
    configure_logging(stream=stream)


def test_uvicorn_lifecycle_lines_dropped_and_metrics_lines_labelled() -> None:
    from mlpack.server.logging import server_label

    stream = io.StringIO()
    configure_logging(stream=stream)
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 1)
    with server_label("metrics"):
        logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
    logging.getLogger("uvicorn.error").info("other")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert "WARNING [metrics] [uvicorn.error] Invalid HTTP request received." in lines[0]
    assert "[metrics]" not in lines[1]
