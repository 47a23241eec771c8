"""End to end: gRPC ``ModelStreamInfer`` driven by tritonclient's streaming API.

Same test model and file-based gates/records as ``test_streaming_rest``.
"""

from __future__ import annotations

import queue
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers.server import ASSETS, RunningServer, start_server

pytestmark = pytest.mark.e2e

WAIT = 60.0

triton_grpc = pytest.importorskip("tritonclient.grpc")


@pytest.fixture(scope="module", params=[0, 2], ids=lambda n: f"workers{n}")
def streaming_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("streaming")
    shutil.copytree(ASSETS / "streaming", folder, dirs_exist_ok=True)
    settings = {"parallel_workers": request.param}
    running = start_server(folder, tmp_path_factory.mktemp("logs"), settings=settings)
    yield running
    running.stop()


class _Stream:
    """A tritonclient stream whose callback results land in a queue."""

    def __init__(self, server: RunningServer) -> None:
        self.client = triton_grpc.InferenceServerClient(server.grpc_address)
        self.results: queue.Queue[tuple[Any, Any]] = queue.Queue()
        self.client.start_stream(callback=lambda result, error: self.results.put((result, error)))

    def send(self, model: str, request_id: str, **parameters: Any) -> None:
        data = triton_grpc.InferInput("x", [1], "INT64")
        data.set_data_from_numpy(np.array([0], dtype=np.int64))
        self.client.async_stream_infer(
            model,
            [data],
            request_id=request_id,
            parameters=parameters,
            enable_empty_final_response=True,
        )

    def next(self) -> tuple[Any, Any]:
        return self.results.get(timeout=WAIT)

    def until_final(self, ids: set[str]) -> list[tuple[str, int | None, str | None]]:
        """(id, index or None, error or None) for every message until each id is final."""
        seen: list[tuple[str, int | None, str | None]] = []
        open_ids = set(ids)
        while open_ids:
            result, error = self.next()
            if error is not None:
                seen.append(("?", None, str(error)))
                continue
            response = result.get_response()
            if response.parameters["triton_final_response"].bool_param:
                open_ids.discard(response.id)
                continue
            seen.append((response.id, int(result.as_numpy("index")[0]), None))
        return seen

    def close(self, cancel: bool = False) -> None:
        self.client.stop_stream(cancel_requests=cancel)
        self.client.close()


def _records(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _wait_for_record(path: Path, line: str) -> list[str]:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if line in _records(path):
            return _records(path)
        time.sleep(0.02)
    raise AssertionError(f"the model never recorded {line!r}: {_records(path)}")


def test_every_response_arrives_in_order_with_its_request_id(
    streaming_server: RunningServer,
) -> None:
    stream = _Stream(streaming_server)
    try:
        stream.send("streamer", "a", count=4)
        stream.send("streamer", "b", count=2)
        seen = stream.until_final({"a", "b"})
    finally:
        stream.close()
    assert [index for rid, index, _ in seen if rid == "a"] == [0, 1, 2, 3]
    assert [index for rid, index, _ in seen if rid == "b"] == [0, 1]
    assert len(seen) == 6


def test_responses_arrive_before_the_model_produces_the_last(
    streaming_server: RunningServer, tmp_path: Path
) -> None:
    gate, record = tmp_path / "gate", tmp_path / "record"
    stream = _Stream(streaming_server)
    try:
        stream.send("streamer", "g", count=3, gate=str(gate), record=str(record))
        result, error = stream.next()
        assert error is None and int(result.as_numpy("index")[0]) == 0
        assert "chunk 2" not in _records(record)
        gate.touch()
        seen = stream.until_final({"g"})
    finally:
        stream.close()
    assert [index for _, index, _ in seen] == [1, 2]


def test_errors_travel_per_request_and_the_stream_stays_open(
    streaming_server: RunningServer,
) -> None:
    stream = _Stream(streaming_server)
    try:
        stream.send("streamer", "bad", count=3, fail_at=1)
        result, error = stream.next()
        assert error is None and result.get_response().id == "bad"
        result, error = stream.next()
        assert result is None and "failed at chunk 1 on purpose" in str(error)
        stream.send("plain", "plain")
        result, error = stream.next()
        assert "model 'plain' does not implement predict_stream()" in str(error)
        stream.send("nope", "nope")
        result, error = stream.next()
        assert "model 'nope' not found" in str(error)
        stream.send("streamer", "after", count=2)  # the same stream still serves
        seen = stream.until_final({"after"})
    finally:
        stream.close()
    assert [index for _, index, _ in seen] == [0, 1]


def test_cancelling_the_stream_closes_the_models_generator(
    streaming_server: RunningServer, tmp_path: Path
) -> None:
    record = tmp_path / "record"
    stream = _Stream(streaming_server)
    try:
        stream.send("streamer", "c", count=3, gate=str(tmp_path / "never"), record=str(record))
        _result, error = stream.next()
        assert error is None
    finally:
        stream.close(cancel=True)
    records = _wait_for_record(record, "closed")
    assert "chunk 2" not in records
