"""End to end: streams over REST (server-sent events) from a real ``mlpack start``.

The test model (``tests/assets/streaming/streamer``) is paced and observed through files
the test owns: it waits for a gate file before its last chunk, and appends a line per
chunk it produced (and ``closed`` when its generator ends) to a record file. So the
tests see what the server side did, in worker processes too, without timing anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import EventSource, aconnect_sse, connect_sse

from tests.helpers.server import ASSETS, RunningServer, start_server

pytestmark = pytest.mark.e2e

WAIT = 60.0  # seconds the test waits for a server-side record at most


@pytest.fixture(scope="module", params=[0, 2], ids=lambda n: f"workers{n}")
def streaming_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("streaming")
    shutil.copytree(ASSETS / "streaming", folder, dirs_exist_ok=True)
    settings = {"parallel_workers": request.param, "metrics_endpoint": "/metrics"}
    running = start_server(folder, tmp_path_factory.mktemp("logs"), settings=settings)
    yield running
    running.stop()


def _request(**parameters: Any) -> dict[str, Any]:
    return {
        "id": parameters.pop("id", "stream-1"),
        "parameters": parameters,
        "inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [0]}],
    }


@contextlib.contextmanager
def _sse(url: str, body: dict[str, Any]) -> Iterator[EventSource]:
    with (
        httpx.Client(timeout=WAIT) as client,
        connect_sse(client, "POST", url, json=body) as source,
    ):
        yield source


def _records(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _wait_for_record(path: Path, line: str) -> list[str]:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        records = _records(path)
        if line in records:
            return records
        time.sleep(0.02)
    raise AssertionError(f"the model never recorded {line!r}: {_records(path)}")


def test_chunks_arrive_before_the_model_produces_the_last(
    streaming_server: RunningServer, tmp_path: Path
) -> None:
    gate, record = tmp_path / "gate", tmp_path / "record"
    body = _request(count=3, gate=str(gate), record=str(record))
    url = streaming_server.url + "/v2/models/streamer/infer_stream"
    with (
        httpx.Client(timeout=WAIT) as client,
        connect_sse(client, "POST", url, json=body) as source,
    ):
        assert source.response.status_code == 200
        assert source.response.headers["content-type"].startswith("text/event-stream")
        events = source.iter_sse()
        first = json.loads(next(events).data)
        # The model is held before its last chunk until the gate opens: the first
        # chunk is here while the last one does not exist yet.
        assert first["outputs"][0]["data"] == [0]
        assert "chunk 2" not in _records(record)
        gate.touch()
        rest = [json.loads(event.data) for event in events]
    chunks = [first, *rest]
    assert [c["outputs"][0]["data"][0] for c in chunks] == [0, 1, 2]
    assert {(c["id"], c["model_name"]) for c in chunks} == {("stream-1", "streamer")}
    assert _wait_for_record(record, "closed")[-1] == "closed"


def test_a_plain_generator_streams_from_the_model_thread(
    streaming_server: RunningServer, request: pytest.FixtureRequest
) -> None:
    """Never on the server's loop: on the model's thread, or in a worker process."""
    body = {"inputs": [{"name": "count", "shape": [1], "datatype": "INT64", "data": [3]}]}
    url = streaming_server.url + "/v2/models/sync_streamer/infer_stream"
    with (
        httpx.Client(timeout=WAIT) as client,
        connect_sse(client, "POST", url, json=body) as source,
    ):
        chunks = [json.loads(event.data) for event in source.iter_sse()]
    assert [c["outputs"][0]["data"][0] for c in chunks] == [0, 1, 2]
    threads = {c["outputs"][1]["data"][0] for c in chunks}
    pids = {c["outputs"][2]["data"][0] for c in chunks}
    assert len(threads) == 1 and len(pids) == 1
    if request.node.callspec.params["streaming_server"]:  # workers: another process
        assert pids != {streaming_server.process.pid}
    else:
        assert "MainThread" not in threads and pids == {streaming_server.process.pid}


def test_errors_before_the_first_chunk_are_plain_json(streaming_server: RunningServer) -> None:
    url = streaming_server.url
    missing = httpx.post(url + "/v2/models/nope/infer_stream", json=_request())
    assert missing.status_code == 404 and "nope" in missing.json()["error"]
    plain = httpx.post(url + "/v2/models/plain/infer_stream", json=_request())
    assert plain.status_code == 400
    assert "model 'plain' does not implement predict_stream()" in plain.json()["error"]
    empty = httpx.post(url + "/v2/models/streamer/infer_stream", json={"inputs": []})
    assert empty.status_code == 400 and "no inputs" in empty.json()["error"]
    text = httpx.post(
        url + "/v2/models/streamer/infer_stream",
        content=b"x",
        headers={"content-type": "text/plain"},
    )
    assert text.status_code == 415
    broken = httpx.post(url + "/v2/models/streamer/infer_stream", json=_request(fail_at=0))
    assert broken.status_code == 500 and "failed at chunk 0 on purpose" in broken.json()["error"]


def test_an_error_mid_stream_is_an_event_and_the_server_keeps_serving(
    streaming_server: RunningServer, tmp_path: Path
) -> None:
    url = streaming_server.url + "/v2/models/streamer/infer_stream"
    body = _request(count=3, fail_at=1)
    with (
        httpx.Client(timeout=WAIT) as client,
        connect_sse(client, "POST", url, json=body) as source,
    ):
        events = [json.loads(event.data) for event in source.iter_sse()]
    assert events[0]["outputs"][0]["data"] == [0]
    assert len(events) == 2 and "failed at chunk 1 on purpose" in events[1]["error"]
    with (
        httpx.Client(timeout=WAIT) as client,
        connect_sse(client, "POST", url, json=_request(count=2)) as source,
    ):
        assert len(list(source.iter_sse())) == 2


def test_disconnect_closes_the_models_generator(
    streaming_server: RunningServer, tmp_path: Path
) -> None:
    url = streaming_server.url + "/v2/models/streamer/infer_stream"
    # Waiting at its gate (never opened) when the client leaves.
    waiting = tmp_path / "waiting"
    body = _request(count=3, gate=str(tmp_path / "never"), record=str(waiting))
    with (
        httpx.Client(timeout=WAIT) as client,
        connect_sse(client, "POST", url, json=body) as source,
    ):
        next(source.iter_sse())
    records = _wait_for_record(waiting, "closed")
    assert "chunk 2" not in records
    # Producing as fast as it can when the client leaves: it stops within a few chunks.
    busy = tmp_path / "busy"
    body = _request(count=100_000, record=str(busy))
    with (
        httpx.Client(timeout=WAIT) as client,
        connect_sse(client, "POST", url, json=body) as source,
    ):
        next(source.iter_sse())
    records = _wait_for_record(busy, "closed")
    assert len(records) - 1 < 100_000


def test_a_slow_reader_holds_the_model_back(
    streaming_server: RunningServer, tmp_path: Path
) -> None:
    """The server never holds more than a bounded number of chunks for a reader that
    does not read: the model's generator waits (``max_stream_buffer`` 4, then socket
    buffers). 64 KiB chunks, so an unbounded server would run through all 2000."""
    record = tmp_path / "record"
    total = 2000
    body = _request(count=total, size=64 * 1024, record=str(record))
    url = streaming_server.url + "/v2/models/streamer/infer_stream"
    with (
        httpx.Client(timeout=WAIT) as client,
        connect_sse(client, "POST", url, json=body) as source,
    ):
        events = source.iter_sse()
        next(events)
        # Wait until the producer has stopped moving (it is blocked on back-pressure).
        produced, still, deadline = -1, 0, time.monotonic() + WAIT
        while still < 25 and time.monotonic() < deadline:
            now = len(_records(record))
            still = still + 1 if now == produced else 0
            produced = now
            time.sleep(0.02)
        print(f"slow reader: the model produced {produced} of {total} chunks")
        assert 1 <= produced < 200, produced  # ~13 MB at most, not 125 MB
        received = 1 + sum(1 for _ in events)
    assert received == total


def test_many_concurrent_streams_each_get_their_own_chunks(
    streaming_server: RunningServer,
) -> None:
    url = streaming_server.url + "/v2/models/streamer/infer_stream"
    streams, count = 200, 5

    async def one(client: httpx.AsyncClient, index: int) -> list[tuple[str, str, int]]:
        body = _request(count=count, tag=f"t{index}", id=f"r{index}")
        async with aconnect_sse(client, "POST", url, json=body) as source:
            got = []
            async for event in source.aiter_sse():
                chunk = json.loads(event.data)
                outputs = {o["name"]: o["data"][0] for o in chunk["outputs"]}
                got.append((chunk["id"], outputs["tag"], outputs["index"]))
            return got

    async def run() -> list[list[tuple[str, str, int]]]:
        limits = httpx.Limits(max_connections=streams, max_keepalive_connections=streams)
        async with httpx.AsyncClient(timeout=WAIT * 2, limits=limits) as client:
            return await asyncio.gather(*(one(client, i) for i in range(streams)))

    results = asyncio.run(run())
    for index, got in enumerate(results):
        assert got == [(f"r{index}", f"t{index}", i) for i in range(count)]


def test_generate_and_generate_stream(streaming_server: RunningServer) -> None:
    url = streaming_server.url + "/v2/models/streamer"
    body = {"id": "g1", "text_input": "streams are first class", "parameters": {"max_tokens": 4}}
    whole = httpx.post(url + "/generate", json=body)
    assert whole.status_code == 200
    assert whole.json() == {
        "model_name": "streamer",
        "id": "g1",
        "text_output": "STREAMS ARE FIRST CLASS",
    }
    with (
        httpx.Client(timeout=WAIT) as client,
        connect_sse(client, "POST", url + "/generate_stream", json=body) as source,
    ):
        pieces = [json.loads(event.data) for event in source.iter_sse()]
    assert [p["text_output"] for p in pieces] == ["streams ", "are ", "first ", "class "]
    assert {p["id"] for p in pieces} == {"g1"}
    bad = httpx.post(url + "/generate", json={"text_input": {"nested": 1}})
    assert bad.status_code == 400 and "text_input" in bad.json()["error"]
    refused = httpx.post(streaming_server.url + "/v2/models/plain/generate_stream", json=body)
    assert refused.status_code == 400


def test_stream_metrics_are_exported(streaming_server: RunningServer) -> None:
    url = streaming_server.url + "/v2/models/streamer/infer_stream"
    with (
        httpx.Client(timeout=WAIT) as client,
        connect_sse(client, "POST", url, json=_request(count=2)) as source,
    ):
        assert len(list(source.iter_sse())) == 2
    text = httpx.get(f"http://127.0.0.1:{streaming_server.metrics_port}/metrics").text
    assert 'model_stream_success_total{model_name="streamer",model_version=""}' in text
    assert "model_stream_first_chunk_seconds_bucket" in text
    assert 'model_streams_open{model_name="streamer",model_version=""} 0.0' in text
    stats = httpx.get(streaming_server.url + "/v2/models/streamer/stats").json()
    assert stats["model_stats"][0]["stream_stats"]["chunks"] >= 2
