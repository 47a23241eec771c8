"""End to end: ``mlpack.client`` streams from a real ``mlpack start``, over REST and gRPC.

Three clients: ``AsyncClient`` (the project's HTTP/1.1 pool), ``Client`` (httpx) and
``AsyncGrpcClient`` (``ModelStreamInfer``). The test model (``tests/assets/streaming``) is
paced and observed through files the test owns: it waits for a gate file before its last
chunk and records each chunk it produced, and ``closed`` when its generator ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mlpack.client import AsyncClient, Client, ServerError
from mlpack.client.grpc import AsyncGrpcClient
from tests.helpers.server import ASSETS, RunningServer, start_server

pytestmark = pytest.mark.e2e

WAIT = 60.0  # seconds the test waits for a server-side record at most
KINDS = ["rest-async", "rest-sync", "grpc"]


@pytest.fixture(scope="module", params=[0, 2], ids=lambda n: f"workers{n}")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("streaming")
    shutil.copytree(ASSETS / "streaming", folder, dirs_exist_ok=True)
    settings = {"parallel_workers": request.param}
    running = start_server(folder, tmp_path_factory.mktemp("logs"), settings=settings)
    yield running
    running.stop()


def _request(**parameters: Any) -> dict[str, Any]:
    return {
        "id": "stream-1",
        "parameters": parameters,
        "inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [0]}],
    }


async def _stream(
    kind: str,
    server: RunningServer,
    request: dict[str, Any],
    model: str = "streamer",
    after: Callable[[int], bool] = lambda index: True,
) -> list[dict[str, Any]]:
    """Stream ``request`` with client ``kind``; ``after(i)`` runs on chunk i, False stops."""
    seen: list[dict[str, Any]] = []
    if kind == "rest-sync":

        def read() -> None:
            with Client(server.url, timeout=WAIT) as client:
                stream = client.infer_stream_json(model, request)
                with contextlib.closing(stream):
                    for chunk in stream:
                        seen.append(chunk)
                        if not after(len(seen) - 1):
                            return

        await asyncio.to_thread(read)
        return seen
    reader: AsyncClient | AsyncGrpcClient
    if kind == "rest-async":
        reader = AsyncClient(server.url, timeout=WAIT)
    else:
        reader = AsyncGrpcClient(server.grpc_address, timeout=WAIT)
    async with reader:
        chunks: AsyncIterator[dict[str, Any]] = reader.infer_stream_json(model, request)
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                seen.append(chunk)
                if not after(len(seen) - 1):
                    break
    return seen


def _indexes(chunks: list[dict[str, Any]]) -> list[int]:
    return [int(c["outputs"][0]["data"][0]) for c in chunks]


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


@pytest.mark.parametrize("kind", KINDS)
def test_each_chunk_is_handed_over_as_it_arrives(
    server: RunningServer, tmp_path: Path, kind: str
) -> None:
    # The model makes its last chunk only once the client has had the first: a client that
    # waited for the whole stream would never see the gate open.
    gate = tmp_path / "gate"

    def open_gate(index: int) -> bool:
        gate.touch()
        return True

    request = _request(count=3, gate=str(gate), record=str(tmp_path / "record"))
    chunks = asyncio.run(_stream(kind, server, request, after=open_gate))
    assert _indexes(chunks) == [0, 1, 2]
    assert {c["id"] for c in chunks} == {"stream-1"}


@pytest.mark.parametrize("kind", KINDS)
def test_an_error_mid_stream_raises_with_the_servers_message(
    server: RunningServer, kind: str
) -> None:
    seen: list[int] = []

    def note(index: int) -> bool:
        seen.append(index)
        return True

    with pytest.raises(ServerError, match="failed at chunk 1 on purpose"):
        asyncio.run(_stream(kind, server, _request(count=3, fail_at=1), after=note))
    assert seen == [0]
    # The server keeps serving, and the client too.
    assert _indexes(asyncio.run(_stream(kind, server, _request(count=2)))) == [0, 1]


@pytest.mark.parametrize("kind", KINDS)
def test_leaving_a_stream_early_stops_the_model(
    server: RunningServer, tmp_path: Path, kind: str
) -> None:
    record = tmp_path / "record"
    request = _request(count=3, gate=str(tmp_path / "never"), record=str(record))
    chunks = asyncio.run(_stream(kind, server, request, after=lambda index: False))
    assert _indexes(chunks) == [0]
    records = _wait_for_record(record, "closed")  # the server closed the model's generator
    assert "chunk 2" not in records


@pytest.mark.parametrize("kind", KINDS)
def test_a_model_that_cannot_stream_is_named(server: RunningServer, kind: str) -> None:
    with pytest.raises(ServerError, match="model 'plain' does not implement predict_stream") as e:
        asyncio.run(_stream(kind, server, _request(), model="plain"))
    if kind != "grpc":  # gRPC's error_message carries no status
        assert e.value.status == 400


def test_generate_over_rest_and_grpc_gives_the_same_chunks(server: RunningServer) -> None:
    parameters = {"tag": "t"}

    async def run() -> tuple[Any, ...]:
        async with AsyncClient(server.url) as rest, AsyncGrpcClient(server.grpc_address) as grpc:
            return (
                [c async for c in rest.generate_stream("streamer", "one two three", parameters)],
                [c async for c in grpc.generate_stream("streamer", "one two three", parameters)],
                await rest.generate("streamer", "one two three"),
                await grpc.generate("streamer", "one two three"),
            )

    rest_chunks, grpc_chunks, rest_whole, grpc_whole = asyncio.run(run())
    assert [c["text_output"] for c in rest_chunks] == ["one ", "two ", "three "]
    assert [c["text_output"] for c in grpc_chunks] == ["one ", "two ", "three "]
    assert rest_whole["text_output"] == grpc_whole["text_output"] == "ONE TWO THREE"
    with Client(server.url) as client:
        chunks = list(client.generate_stream("streamer", "four five"))
        assert [c["text_output"] for c in chunks] == ["four ", "five "]
        assert client.generate("streamer", "four")["text_output"] == "FOUR"
