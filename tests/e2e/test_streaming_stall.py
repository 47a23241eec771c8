"""End to end: a stream whose client stays connected but stops reading is abandoned after
``stream_stall_timeout`` (REST), with and without worker processes."""

from __future__ import annotations

import json
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.server import ASSETS, RunningServer, start_server

pytestmark = pytest.mark.e2e

WAIT = 90.0  # safety net for the polling loops only
STALL = 1.0  # the server's stream_stall_timeout in these tests
CHUNK = 64 * 1024  # characters of padding per chunk


@pytest.fixture(scope="module", params=[0, 2], ids=["in-process", "2-workers"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("stall")
    shutil.copytree(ASSETS / "streaming" / "streamer", folder / "streamer")
    settings = {"parallel_workers": request.param, "stream_stall_timeout": STALL}
    running = start_server(folder, tmp_path_factory.mktemp("logs"), settings)
    running.extra["workers"] = request.param
    yield running
    running.stop()


def _body(**parameters: object) -> bytes:
    return json.dumps(
        {
            "parameters": parameters,
            "inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [0]}],
        }
    ).encode()


def _stalled_client(server: RunningServer, record: Path) -> socket.socket:
    """A raw connection that asks for a stream of many large chunks and never reads."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.http_port))
    body = _body(count=10_000, size=CHUNK, record=str(record))
    head = (
        "POST /v2/models/streamer/infer_stream HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _metrics(server: RunningServer) -> str:
    return httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=30).text


def _stalled_count(server: RunningServer) -> float:
    for line in _metrics(server).splitlines():
        if line.startswith('model_stream_stalled_total{model_name="streamer"'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _wait_closed(record: Path, server: RunningServer) -> None:
    deadline = time.monotonic() + WAIT
    while "closed" not in _lines(record):
        assert time.monotonic() < deadline, server.log()[-3000:]
        time.sleep(0.05)


def test_a_client_that_stops_reading_has_its_stream_abandoned(
    server: RunningServer, tmp_path: Path
) -> None:
    before = _stalled_count(server)
    # As many stalled streams as workers (at least one): every worker is held by one.
    stalled = max(1, int(server.extra["workers"]))
    records = [tmp_path / f"stalled-{index}" for index in range(stalled)]
    sockets = [_stalled_client(server, record) for record in records]
    try:
        for record in records:
            _wait_closed(record, server)  # the model's generator was closed
            produced = [line for line in _lines(record) if line.startswith("chunk")]
            assert 0 < len(produced) < 10_000  # back-pressure held it, then the stall ended it
        deadline = time.monotonic() + WAIT
        while _stalled_count(server) < before + stalled:
            assert time.monotonic() < deadline, server.log()[-3000:]
            time.sleep(0.05)
        assert "stream abandoned" in server.log()
        assert "model 'streamer'" in server.log()
        assert "Traceback" not in server.log()  # a dropped connection, not a crashed app
        # The worker(s) are free again: a prediction and a whole stream both go through.
        answer = httpx.post(
            server.url + "/v2/models/streamer/infer",
            content=_body(),
            timeout=WAIT,
            headers={"content-type": "application/json"},
        )
        assert answer.status_code == 200, answer.text
        with httpx.stream(
            "POST",
            server.url + "/v2/models/streamer/infer_stream",
            content=_body(count=3),
            headers={"content-type": "application/json"},
            timeout=WAIT,
        ) as response:
            events = [line for line in response.iter_lines() if line.startswith("data:")]
        assert len(events) == 3
        # The stalled connection was dropped by the server: reading it drains, then ends.
        for sock in sockets:
            sock.settimeout(WAIT)
            while sock.recv(1 << 20):
                pass
    finally:
        for sock in sockets:
            sock.close()


def test_a_slow_client_that_keeps_reading_gets_every_chunk(
    server: RunningServer, tmp_path: Path
) -> None:
    before = _stalled_count(server)
    record = tmp_path / "slow"
    body = _body(count=12, size=CHUNK, record=str(record))
    received = []
    with httpx.stream(
        "POST",
        server.url + "/v2/models/streamer/infer_stream",
        content=body,
        headers={"content-type": "application/json"},
        timeout=WAIT,
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data:"):
                received.append(json.loads(line[5:])["outputs"][0]["data"][0])
                time.sleep(STALL / 10)  # slow, but well within the stall bound
    assert received == list(range(12))
    assert _stalled_count(server) == before


def _grpc_request(**parameters: object) -> object:
    from mlpack.proto import inference_pb2 as pb

    request = pb.ModelInferRequest(model_name="streamer", id="stalled")
    tensor = request.inputs.add(name="x", datatype="INT64", shape=[1])
    tensor.contents.int64_contents.append(0)
    for key, value in parameters.items():
        if isinstance(value, int):
            request.parameters[key].int64_param = value
        else:
            request.parameters[key].string_param = str(value)
    return request


@pytest.mark.timeout(240)
def test_a_grpc_client_that_stops_reading_has_its_call_ended(
    server: RunningServer, tmp_path: Path
) -> None:
    grpc = pytest.importorskip("grpc")
    from mlpack.proto import inference_pb2_grpc as pb_grpc

    before = _stalled_count(server)
    record = tmp_path / "grpc-stalled"
    request = _grpc_request(count=10_000, size=CHUNK, record=str(record))
    with grpc.insecure_channel(server.grpc_address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        call = stub.ModelStreamInfer(iter([request]), timeout=600)
        # Read nothing: gRPC flow control stops the server's writes, its queue fills.
        _wait_closed(record, server)
        deadline = time.monotonic() + WAIT
        while _stalled_count(server) < before + 1:
            assert time.monotonic() < deadline, server.log()[-3000:]
            time.sleep(0.05)
        produced = [line for line in _lines(record) if line.startswith("chunk")]
        assert 0 < len(produced) < 10_000
        # Reading now: what was already sent, then the call's end with a clear status.
        with pytest.raises(grpc.RpcError) as ended:
            for _ in call:
                pass
        assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, ended.value
        assert "stopped reading" in str(ended.value.details())
    assert "unhandled" not in server.log()
    # The handler itself finished, with the stall's code (not left blocked in a write).
    deadline = time.monotonic() + WAIT
    while 'grpc_code="DEADLINE_EXCEEDED",grpc_method="ModelStreamInfer"' not in _metrics(server):
        assert time.monotonic() < deadline, _metrics(server)[-3000:]
        time.sleep(0.05)
    answer = httpx.post(
        server.url + "/v2/models/streamer/infer",
        content=_body(),
        timeout=WAIT,
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 200, answer.text
