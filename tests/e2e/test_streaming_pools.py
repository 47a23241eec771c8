"""End to end: streams from a model with a worker pool of its own (zygote-forked workers)."""

from __future__ import annotations

import json
import shutil
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
    folder = tmp_path_factory.mktemp("streaming-pool")
    shutil.copytree(ASSETS / "streaming" / "streamer", folder / "streamer")
    settings_file = folder / "streamer" / "model-settings.json"
    settings = json.loads(settings_file.read_text())
    settings["parallel_workers"] = 2  # its own pool, forked from a zygote
    settings_file.write_text(json.dumps(settings))
    running = start_server(folder, tmp_path_factory.mktemp("logs"))
    yield running
    running.stop()


def _records(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _body(**parameters: object) -> dict[str, object]:
    return {
        "parameters": parameters,
        "inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [0]}],
    }


def test_a_model_in_its_own_pool_streams_and_a_leaving_client_closes_its_generator(
    server: RunningServer, tmp_path: Path
) -> None:
    url = server.url + "/v2/models/streamer/infer_stream"
    gate, record = tmp_path / "gate", tmp_path / "record"
    with (
        httpx.Client(timeout=WAIT) as client,
        connect_sse(
            client, "POST", url, json=_body(count=3, gate=str(gate), record=str(record))
        ) as source,
    ):
        assert source.response.status_code == 200, server.log()
        events = source.iter_sse()
        assert json.loads(next(events).data)["outputs"][0]["data"] == [0]
        assert "chunk 2" not in _records(record)
        gate.touch()
        assert [json.loads(e.data)["outputs"][0]["data"][0] for e in events] == [1, 2]
    left = tmp_path / "left"
    body = _body(count=3, gate=str(tmp_path / "never"), record=str(left))
    with (
        httpx.Client(timeout=WAIT) as client,
        connect_sse(client, "POST", url, json=body) as source,
    ):
        next(source.iter_sse())
    deadline = time.monotonic() + WAIT
    while "closed" not in _records(left):
        assert time.monotonic() < deadline, _records(left)
        time.sleep(0.02)
    assert "chunk 2" not in _records(left)
    assert "zygote" in server.log()  # the pool really forks from a zygote
