"""End to end: adaptive batching and worker processes behind a real ``mlpack start``."""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.server import ASSETS, RunningServer, start_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=[0, 2], ids=["in-process", "2-workers"])
def engine_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("engine")
    shutil.copytree(ASSETS / "engine", folder, dirs_exist_ok=True)
    running = start_server(folder, folder, settings={"parallel_workers": request.param})
    running.extra["workers"] = request.param
    yield running
    assert running.stop() == 0, running.log()


def body(values: list[float], width: int = 1, **parameters: Any) -> dict[str, Any]:
    rows = len(values) // width
    return {
        "id": f"req-{values[0]}",
        "parameters": parameters or None,
        "inputs": [{"name": "x", "datatype": "FP64", "shape": [rows, width], "data": values}],
    }


def post(
    server: RunningServer, model: str, payload: dict[str, Any], timeout: float = 30
) -> httpx.Response:
    return httpx.post(f"{server.url}/v2/models/{model}/infer", json=payload, timeout=timeout)


def concurrently(count: int, call: Any) -> list[Any]:
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        return list(pool.map(call, range(count)))


def test_batching_is_visible_and_each_caller_gets_its_rows(engine_server: RunningServer) -> None:
    responses = concurrently(
        24, lambda i: post(engine_server, "batched", body([float(i)], sleep=0.1))
    )
    sizes = []
    for i, response in enumerate(responses):
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["id"] == f"req-{float(i)}"
        outputs = {o["name"]: o for o in result["outputs"]}
        assert outputs["doubled"]["data"] == [2.0 * i] and outputs["doubled"]["shape"] == [1, 1]
        sizes.append(outputs["batch_rows"]["data"][0])
        assert int(response.headers["x-mlpack-batch-size"]) == result["parameters"]["batch_size"]
    assert max(sizes) > 1, sizes


def test_lone_request_does_not_wait_for_the_window(engine_server: RunningServer) -> None:
    post(engine_server, "batched", body([1.0]))  # warm
    started = time.perf_counter()
    response = post(engine_server, "batched", body([1.0], sleep=0.0))
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert response.json()["parameters"]["batch_size"] == 1
    # The model's window is 0.5 s: a lone request that waited for it would show it.
    assert response.json()["parameters"]["queue_wait_ms"] < 100
    assert elapsed < 0.45


def test_mixed_shapes_are_batched_separately(engine_server: RunningServer) -> None:
    def call(i: int) -> httpx.Response:
        width = 1 + i % 3
        return post(engine_server, "batched", body([float(i)] * width * 2, width=width))

    for i, response in enumerate(concurrently(18, call)):
        assert response.status_code == 200, response.text
        doubled = response.json()["outputs"][0]
        width = 1 + i % 3
        assert doubled["shape"] == [2, width] and doubled["data"] == [2.0 * i] * width * 2


def test_wrong_row_count_is_a_clear_500_never_other_data(engine_server: RunningServer) -> None:
    responses = concurrently(12, lambda i: post(engine_server, "wrongrows", body([float(i)])))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 500} and 500 in statuses, statuses
    for response in responses:
        if response.status_code == 500:
            assert "one row per input row" in response.json()["error"]
        else:
            assert response.json()["outputs"][0]["shape"] == [1]


def test_queue_overflow_gives_503_with_retry_after(engine_server: RunningServer) -> None:
    def call(i: int) -> httpx.Response:
        return post(engine_server, "tinyqueue", body([float(i)], sleep=0.25))

    responses = concurrently(32, call)
    overloaded = [r for r in responses if r.status_code == 503]
    assert overloaded, [r.status_code for r in responses]
    assert overloaded[0].headers["retry-after"] == "1"
    assert "max_queue_size 4" in overloaded[0].json()["error"]
    assert all(r.status_code in (200, 503) for r in responses)


def _worker_pids(server: RunningServer) -> list[int]:
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    found = []
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in cmdline:
            found.append(int(child))
    return found


def test_sigkill_a_worker_under_load_recovers(engine_server: RunningServer) -> None:
    if not engine_server.extra["workers"]:
        pytest.skip("needs worker processes")
    pids = _worker_pids(engine_server)
    assert len(pids) == 2

    def call(i: int) -> tuple[int, float]:
        started = time.perf_counter()
        response = post(
            engine_server,
            "slow",
            {"inputs": [{"name": "s", "datatype": "FP64", "shape": [1], "data": [0.3]}]},
        )
        return response.status_code, time.perf_counter() - started

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(call, i) for i in range(6)]
        time.sleep(0.15)
        os.kill(pids[0], signal.SIGKILL)
        results = [f.result(timeout=20) for f in futures]
    statuses = [status for status, _ in results]
    assert set(statuses) <= {200, 503} and 200 in statuses, statuses
    assert max(elapsed for _, elapsed in results) < 10
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(_worker_pids(engine_server)) < 2:
        time.sleep(0.1)
    assert len(_worker_pids(engine_server)) == 2 and pids[0] not in _worker_pids(engine_server)
    ok = concurrently(4, lambda i: post(engine_server, "echo", body([float(i)])))
    assert all(r.status_code == 200 for r in ok)


@pytest.mark.parametrize("workers", [0, 1])
def test_sigterm_finishes_accepted_requests(workers: int, tmp_path: Path) -> None:
    shutil.copytree(ASSETS / "engine", tmp_path / "models")
    server = start_server(tmp_path / "models", tmp_path, settings={"parallel_workers": workers})
    marker = tmp_path / "started.txt"
    request = {
        "parameters": {"marker": str(marker)},
        "inputs": [{"name": "s", "datatype": "FP64", "shape": [1], "data": [0.5]}],
    }
    try:
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(post, server, "slow", request) for _ in range(3)]
            # SIGTERM only once compute has started, i.e. the server has accepted requests.
            deadline = time.monotonic() + 20
            while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert marker.exists(), server.log()
            time.sleep(0.3)  # the other two are read by then and queued behind the first
            os.killpg(server.process.pid, signal.SIGTERM)
            statuses = [f.result(timeout=20).status_code for f in futures]
        assert statuses == [200, 200, 200], server.log()
        assert server.process.wait(20) == 0
    finally:
        server.stop(signal.SIGKILL)


def test_disconnected_client_is_dropped_before_compute(engine_server: RunningServer) -> None:
    import socket

    def raw_request(sleep: float, value: float, width: int = 1) -> socket.socket:
        payload = httpx.Request(
            "POST",
            f"{engine_server.url}/v2/models/tinyqueue/infer",
            json=body([value] * width, width=width, sleep=sleep),
        ).read()
        sock = socket.create_connection(("127.0.0.1", engine_server.http_port))
        sock.sendall(
            (
                f"POST /v2/models/tinyqueue/infer HTTP/1.1\r\nHost: x\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
            ).encode()
            + payload
        )
        return sock

    # Occupy every slot, queue requests behind them, then hang up on the queued ones.
    busy = [raw_request(0.4, float(i)) for i in range(2 * engine_server.extra["workers"] or 2)]
    time.sleep(0.1)
    # A different width: these never join a busy request's batch.
    gone = [raw_request(2.0, 100.0 + i, width=2) for i in range(2)]
    time.sleep(0.05)
    for sock in gone:
        sock.close()
    for sock in busy:
        sock.settimeout(10)
        assert b" 200 " in sock.recv(65536).split(b"\r\n")[0]
        sock.close()
    # The hung-up requests were never computed: had they been, the next request would
    # wait at least 2 s behind each of them (a wide margin on a loaded machine).
    started = time.perf_counter()
    response = post(engine_server, "tinyqueue", body([7.0], sleep=0.01))
    assert response.status_code == 200
    assert time.perf_counter() - started < 1.5
