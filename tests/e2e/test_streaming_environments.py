"""End to end: streams from models with an environment of their own (worker processes
started with another interpreter), over REST server-sent events."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from httpx_sse import connect_sse

from tests.helpers.server import ASSETS, RunningServer, start_server

pytestmark = pytest.mark.e2e

WAIT = 60.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("streaming-env")
    venv = folder / ".env"  # a cheap environment: another interpreter, no packages of its own
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    for name in ("streamer", "sync_streamer"):
        shutil.copytree(ASSETS / "streaming" / name, folder / name)
        settings_file = folder / name / "model-settings.json"
        settings = json.loads(settings_file.read_text())
        settings["parameters"] = {"environment_path": str(venv)}
        settings_file.write_text(json.dumps(settings))
    running = start_server(folder, tmp_path_factory.mktemp("logs"))
    yield running
    running.stop()


def _records(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _wait_for_record(path: Path, line: str) -> list[str]:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if line in (records := _records(path)):
            return records
        time.sleep(0.02)
    raise AssertionError(f"the model never recorded {line!r}: {_records(path)}")


def _body(**parameters: object) -> dict[str, object]:
    return {
        "parameters": parameters,
        "inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [0]}],
    }


def test_an_environment_model_streams_incrementally_from_its_own_process(
    server: RunningServer, tmp_path: Path
) -> None:
    gate, record = tmp_path / "gate", tmp_path / "record"
    url = server.url + "/v2/models/streamer/infer_stream"
    with (
        httpx.Client(timeout=WAIT) as client,
        connect_sse(
            client, "POST", url, json=_body(count=3, gate=str(gate), record=str(record))
        ) as source,
    ):
        assert source.response.status_code == 200, server.log()
        events = source.iter_sse()
        first = json.loads(next(events).data)
        assert first["outputs"][0]["data"] == [0] and "chunk 2" not in _records(record)
        gate.touch()
        rest = [json.loads(event.data)["outputs"][0]["data"][0] for event in events]
    assert rest == [1, 2]
    body = {"inputs": [{"name": "count", "shape": [1], "datatype": "INT64", "data": [2]}]}
    with (
        httpx.Client(timeout=WAIT) as client,
        connect_sse(
            client, "POST", server.url + "/v2/models/sync_streamer/infer_stream", json=body
        ) as source,
    ):
        pids = {json.loads(e.data)["outputs"][2]["data"][0] for e in source.iter_sse()}
    assert len(pids) == 1 and pids != {server.process.pid}


def test_a_client_leaving_closes_the_generator_in_the_environment(
    server: RunningServer, tmp_path: Path
) -> None:
    record = tmp_path / "record"
    url = server.url + "/v2/models/streamer/infer_stream"
    body = _body(count=3, gate=str(tmp_path / "never"), record=str(record))
    with (
        httpx.Client(timeout=WAIT) as client,
        connect_sse(client, "POST", url, json=body) as source,
    ):
        next(source.iter_sse())
    assert "chunk 2" not in _wait_for_record(record, "closed")
    # The environment's worker is free again: the next stream is served.
    with (
        httpx.Client(timeout=WAIT) as client,
        connect_sse(client, "POST", url, json=_body(count=2)) as source,
    ):
        assert len(list(source.iter_sse())) == 2
