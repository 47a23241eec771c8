"""SIGTERM with streams open: they finish within ``graceful_timeout``; past it they end
with an error event (and the model's generator is closed)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import EventSource, connect_sse

from tests.helpers.server import ASSETS, RunningServer, start_server

pytestmark = pytest.mark.e2e

WAIT = 60.0


def _server(tmp_path: Path, graceful_timeout: float, workers: int) -> RunningServer:
    folder = tmp_path / "models"
    shutil.copytree(ASSETS / "streaming" / "streamer", folder / "streamer")
    settings = {
        "parallel_workers": workers,
        "graceful_timeout": graceful_timeout,
        "drain_delay": 0,
    }
    return start_server(folder, tmp_path, settings=settings)


def _body(**parameters: Any) -> dict[str, Any]:
    return {
        "parameters": parameters,
        "inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [0]}],
    }


@contextlib.contextmanager
def _sse(url: str, body: dict[str, Any]) -> Iterator[EventSource]:
    with httpx.Client(timeout=WAIT) as client, connect_sse(client, "POST", url, json=body) as es:
        yield es


def _wait_for_log(server: RunningServer, text: str) -> None:
    deadline = time.monotonic() + WAIT
    while text not in server.log():
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.02)


def _terminate(server: RunningServer) -> None:
    os.killpg(server.process.pid, signal.SIGTERM)
    _wait_for_log(server, "shutting down: finishing in-flight requests")


@pytest.mark.parametrize("workers", [0, 2])
def test_an_open_stream_finishes_after_sigterm(tmp_path: Path, workers: int) -> None:
    server = _server(tmp_path, graceful_timeout=WAIT, workers=workers)
    gate = tmp_path / "gate"
    url = server.url + "/v2/models/streamer/infer_stream"
    try:
        with _sse(url, _body(count=3, gate=str(gate))) as source:
            events = source.iter_sse()
            assert json.loads(next(events).data)["outputs"][0]["data"] == [0]
            _terminate(server)  # the server is stopping with this stream open
            gate.touch()
            rest = [json.loads(event.data) for event in events]
        assert [chunk["outputs"][0]["data"][0] for chunk in rest] == [1, 2]
        assert server.process.wait(WAIT) == 0
    finally:
        server.stop(signal.SIGKILL)


@pytest.mark.parametrize("workers", [0, 2])
def test_past_graceful_timeout_a_stream_ends_with_an_error_event(
    tmp_path: Path, workers: int
) -> None:
    server = _server(tmp_path, graceful_timeout=1, workers=workers)
    record = tmp_path / "record"
    url = server.url + "/v2/models/streamer/infer_stream"
    body = _body(count=2, gate=str(tmp_path / "never"), record=str(record))
    try:
        with _sse(url, body) as source:
            events = source.iter_sse()
            next(events)
            _terminate(server)
            rest = [json.loads(event.data) for event in events]
        assert len(rest) == 1 and "stopped before this stream finished" in rest[0]["error"]
        assert server.process.wait(WAIT) == 0
        assert record.read_text().splitlines()[-1] == "closed"
    finally:
        server.stop(signal.SIGKILL)
