"""Local servers for experiments and tuning: a copy of the model folder with settings applied.

Settings are split by where they live: server fields (``settings.json``, e.g.
``parallel_workers``) need a server restart; model fields (``model-settings.json``, e.g.
``max_batch_size``, ``max_batch_time``) are applied by rewriting the copy's file and
reloading the model through the repository API, without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from .errors import BenchError
from .processes import ServerProcess, start_mlpack

SETTINGS_FILE = "settings.json"
MODEL_SETTINGS_FILE = "model-settings.json"
LOAD_TIMEOUT = 120.0


class LocalServerError(BenchError):
    """A local server could not be prepared, started or reconfigured."""


def split_settings(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``{...}`` → (server settings, model settings); unknown names are an error."""
    from ..settings import ModelSettings, Settings

    server_fields, model_fields = set(Settings.model_fields), set(ModelSettings.model_fields)
    server, model = {}, {}
    for key, value in values.items():
        if key in model_fields and key not in ("name", "implementation"):
            model[key] = value
        elif key in server_fields and key not in ("host", "http_port", "grpc_port", "metrics_port"):
            server[key] = value
        else:
            raise LocalServerError(
                f"unknown or fixed setting {key!r}: use server settings (e.g. parallel_workers) "
                "or model settings (e.g. max_batch_size, max_batch_time)"
            )
    return server, model


def _model_files(root: Path, model: str | None) -> list[Path]:
    files = sorted(root.rglob(MODEL_SETTINGS_FILE))
    if model is None:
        return files
    chosen = []
    for path in files:
        try:
            name = json.loads(path.read_text()).get("name") or path.parent.name
        except (OSError, ValueError):
            continue
        if name == model:
            chosen.append(path)
    return chosen


def write_model_settings(root: Path, model: str | None, values: dict[str, Any]) -> None:
    """Merge ``values`` into the copy's model-settings.json of ``model`` (every model if None)."""
    files = _model_files(root, model)
    if not files:
        raise LocalServerError(f"no model-settings.json for model {model!r} below {root}")
    for path in files:
        settings = json.loads(path.read_text())
        settings.update(values)
        path.write_text(json.dumps(settings, indent=2) + "\n")


def prepare_copy(
    folder: Path,
    workdir: Path,
    server: dict[str, Any],
    model_values: dict[str, Any],
    model: str | None,
) -> Path:
    """Copy ``folder`` into ``workdir/models`` and apply the settings; return the copy."""
    if not folder.is_dir():
        raise LocalServerError(f"{folder} is not a folder")
    copy = workdir / "models"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("__pycache__", ".venv", ".git"))
    if server:
        path = copy / SETTINGS_FILE
        current = json.loads(path.read_text()) if path.is_file() else {}
        current.update(server)
        path.write_text(json.dumps(current, indent=2) + "\n")
    if model_values:
        write_model_settings(copy, model, model_values)
    return copy


async def reload_model(url: str, model: str) -> None:
    """Reload ``model`` from disk through the repository API (it re-reads its settings)."""
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{url}/v2/repository/models/{model}/load", timeout=LOAD_TIMEOUT
        )
    if response.status_code != 200:
        raise LocalServerError(
            f"reloading {model!r} failed: HTTP {response.status_code}: {response.text}"
        )


@contextlib.asynccontextmanager
async def local_server(
    folder: Path,
    server: dict[str, Any],
    model_values: dict[str, Any],
    model: str | None,
) -> AsyncIterator[ServerProcess]:
    """``mlpack start`` on a settings-applied copy of ``folder``; stopped and removed after."""
    workdir = Path(tempfile.mkdtemp(prefix="mlpack-bench-"))
    try:
        copy = prepare_copy(folder, workdir, server, model_values, model)
        try:
            process = await asyncio.to_thread(start_mlpack, copy, workdir)
        except (RuntimeError, TimeoutError) as error:
            raise LocalServerError(f"the local server did not start: {error}") from None
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    try:
        yield process
    finally:
        await asyncio.to_thread(process.stop)
