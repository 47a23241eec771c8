"""Log configuration: readable lines by default, JSON lines on request, or the user's own config.

``configure_logging`` is called once by ``mlpack start``. Every record gets a ``model``
field naming the model whose code emitted it (from the runner's model context), so lines
a model logs from ``load``/``predict`` say which model they came from.
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.config
import sys
import traceback
from collections.abc import Iterable, Iterator, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .._context import current_model
from ..errors import InvalidSettings

TEXT_FORMAT = "%(asctime)s %(levelname)-5s%(server_label)s [%(name)s]%(model_label)s %(message)s"
LOGGERS = ("mlpack", "uvicorn", "uvicorn.error", "uvicorn.access")
# Loggers ``debug`` turns to DEBUG; everything else (grpc, asyncio, ...) stays at INFO
# unless ``debug_all`` or ``debug_loggers`` asks for it.
DEBUG_LOGGERS = ("mlpack", "uvicorn")


# Fields a record may carry (``extra=``) that JSON lines include when set.
EXTRA_FIELDS = (
    "server",
    "request_id",
    "model_version",
    "method",
    "path",
    "status",
    "duration_ms",
    "client",
    "suppressed",
    "trace_id",
    "span_id",
)

# uvicorn's lifecycle lines: each embedded server would repeat them; mlpack logs its own.
_LIFECYCLE = (
    "Started server process",
    "Waiting for application startup",
    "Application startup complete",
    "Waiting for application shutdown",
    "Application shutdown complete",
    "Finished server process",
    "Shutting down",
)

_server_label: ContextVar[str] = ContextVar("mlpack_server_label", default="")


@contextlib.contextmanager
def server_label(label: str) -> Iterator[None]:
    """Mark log lines written in this context (and tasks started in it) as ``label``'s."""
    token = _server_label.set(label)
    try:
        yield
    finally:
        _server_label.reset(token)


class ModelContextFilter(logging.Filter):
    """Adds ``model`` (``name`` or ``name:version``), ``model_label`` and ``server_label``
    (e.g. `` [metrics]`` for the metrics server's lines) to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        label = record.__dict__.get("model")
        if not isinstance(label, str):
            model = current_model()
            label = (
                "" if model is None else model.name + (f":{model.version}" if model.version else "")
            )
            record.__dict__["model"] = label
        record.__dict__["model_label"] = f" [model {label}]" if label else ""
        server = record.__dict__.get("server") or _server_label.get()
        if server:
            record.__dict__["server"] = server
        record.__dict__["server_label"] = f" [{server}]" if server else ""
        return True


class LifecycleFilter(logging.Filter):
    """Drops uvicorn's per-server lifecycle lines (mlpack logs one set for the process)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "uvicorn.error" or record.levelno > logging.INFO:
            return True
        message = record.msg if isinstance(record.msg, str) else ""
        return not message.startswith(_LIFECYCLE)


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, model, and exc_info as text."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        model = getattr(record, "model", "")
        if model:
            payload["model"] = model
        fields = record.__dict__
        for name in EXTRA_FIELDS:
            value = fields.get(name)
            if value is not None and value != "":
                payload[name] = value
        if record.exc_info:
            payload["exc_info"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        elif record.exc_text:  # a traceback carried as text (e.g. from a worker process)
            payload["exc_info"] = record.exc_text
        if record.stack_info:
            payload["stack_info"] = record.stack_info
        return json.dumps(payload, default=str, ensure_ascii=False)


def configure_logging(
    debug: bool = False,
    structured: bool = False,
    logging_settings: Any = None,
    stream: Any = None,
    debug_all: bool = False,
    debug_loggers: Sequence[str] = (),
) -> None:
    """Set up logging for a server process (replaces handlers this function installed before).

    Parameters:
        debug: DEBUG level for mlpack and uvicorn loggers (INFO otherwise).
        structured: JSON lines instead of readable text.
        debug_all: DEBUG for every logger, third-party ones too (grpc, asyncio, ...).
        debug_loggers: further logger names to set to DEBUG.
        logging_settings: a ``logging.config.dictConfig`` dict, or a path to a JSON
            (or YAML, or ``fileConfig`` .ini/.conf) file, applied after the defaults.
        stream: where the default handler writes (standard error by default).
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name("mlpack")
    handler.addFilter(ModelContextFilter())
    handler.addFilter(LifecycleFilter())
    handler.setFormatter(JSONFormatter() if structured else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == "mlpack":
            root.removeHandler(existing)
    root.addHandler(handler)
    level = logging.DEBUG if debug or debug_all else logging.INFO
    root.setLevel(logging.DEBUG if debug_all else logging.INFO)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.handlers.clear()
        logger.propagate = True
    for name in ("asyncio", "grpc"):
        logging.getLogger(name).setLevel(logging.DEBUG if debug_all else logging.INFO)
    for name in debug_loggers:
        logging.getLogger(name).setLevel(logging.DEBUG)
    if logging_settings is not None:
        apply_logging_settings(logging_settings)


def apply_logging_settings(logging_settings: Any) -> None:
    """Apply a user's logging configuration: a dict, or a JSON / YAML / .ini file path."""
    if isinstance(logging_settings, dict):
        config = dict(logging_settings)
        config.setdefault("version", 1)
        config.setdefault("disable_existing_loggers", False)
        _dict_config(config, "logging_settings")
        return
    path = Path(str(logging_settings))
    if not path.is_file():
        raise InvalidSettings(f"logging_settings: {path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".ini", ".conf", ".cfg"):
        logging.config.fileConfig(path, disable_existing_loggers=False)
        return
    text = path.read_text(encoding="utf-8")
    if suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise InvalidSettings(f"logging_settings: {path}: reading YAML needs PyYAML") from None
        loaded = yaml.safe_load(text)
    else:
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as error:
            raise InvalidSettings(f"logging_settings: {path}: not valid JSON ({error})") from None
    if not isinstance(loaded, dict):
        raise InvalidSettings(f"logging_settings: {path}: expected a mapping")
    loaded.setdefault("version", 1)
    loaded.setdefault("disable_existing_loggers", False)
    _dict_config(loaded, str(path))


def _dict_config(config: dict[str, Any], source: str) -> None:
    try:
        logging.config.dictConfig(config)
    except (ValueError, TypeError, AttributeError, ImportError) as error:
        raise InvalidSettings(f"{source}: invalid logging configuration: {error}") from None


def banner_lines(
    server_name: str,
    server_version: str,
    listeners: Iterable[tuple[str, str]],
    models: Iterable[tuple[str, str | None, str, str]],
) -> list[str]:
    """The startup banner: a line per listener (what, address) and per model."""
    lines = [f"{server_name} {server_version}".strip()]
    for what, address in listeners:
        lines.append(f"  {what:<8} {address}")
    models = list(models)
    if not models:
        lines.append("  no models")
    for name, version, state, reason in models:
        label = f"{name} ({version})" if version else name
        lines.append(f"  model    {label:<30} {state}" + (f": {reason}" if reason else ""))
    return lines
