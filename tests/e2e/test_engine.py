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
    running.extra["folder"] = folder
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
    # widewindow's max_batch_time is 120 s, four times this request's timeout: a lone
    # request that waited for a fuller batch would time out, and its server-side queue
    # wait would read at least 120000 ms. No client-side clock is involved.
    post(engine_server, "widewindow", body([1.0]))  # warm
    response = post(engine_server, "widewindow", body([1.0], sleep=0.0), timeout=30)
    assert response.status_code == 200
    parameters = response.json()["parameters"]
    assert parameters["batch_size"] == 1 and parameters["batch_requests"] == 1
    assert parameters["queue_wait_ms"] < 120_000


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

    def call(i: int) -> int:
        response = post(
            engine_server,
            "slow",
            {"inputs": [{"name": "s", "datatype": "FP64", "shape": [1], "data": [0.3]}]},
        )
        return response.status_code

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(call, i) for i in range(6)]
        time.sleep(0.15)
        os.kill(pids[0], signal.SIGKILL)
        results = [f.result(timeout=20) for f in futures]
    assert set(results) <= {200, 503} and 200 in results, results
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


def _stats(server: RunningServer, model: str) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/v2/models/{model}/stats", timeout=30)
    assert response.status_code == 200, response.text
    stats: dict[str, Any] = response.json()["model_stats"][0]
    return stats


def _wait_for(condition: Any, what: str, server: RunningServer, limit: float = 60) -> None:
    """Poll ``condition`` (a bound for a hung server, never a pass/fail criterion)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"never saw {what}:\n{server.log()}"
        time.sleep(0.01)


def test_disconnected_client_is_dropped_before_compute(
    engine_server: RunningServer, tmp_path: Path
) -> None:
    import socket

    record = engine_server.extra["folder"] / "tinyqueue" / "computed.txt"
    release = tmp_path / "release"

    def computed() -> list[float]:
        return [float(line) for line in record.read_text().split()] if record.exists() else []

    def raw_request(value: float, width: int = 1, **parameters: Any) -> socket.socket:
        payload = httpx.Request(
            "POST", "http://x/", json=body([value] * width, width=width, **parameters)
        ).read()
        sock = socket.create_connection(("127.0.0.1", engine_server.http_port))
        sock.sendall(
            (
                f"POST /v2/models/tinyqueue/infer HTTP/1.1\r\nHost: x\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                "Expect: 100-continue\r\n\r\n"
            ).encode()
        )
        # The server says "100 Continue" once the handler reads the body: the request is
        # with the application, not in a socket buffer, before the body is sent.
        sock.settimeout(30)
        assert sock.recv(64).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(payload)
        return sock

    failed_before = _stats(engine_server, "tinyqueue")["inference_stats"]["fail"]["count"]
    computed_before = len(computed())
    try:
        # Hold every worker the model may use in compute until released: one in-process, and
        # with workers too, since with several models in the pool one model keeps to all
        # workers but one (the per-model cap).
        slots = 1
        busy = [raw_request(float(i), hold=str(release)) for i in range(slots)]
        _wait_for(
            lambda: len(computed()) >= computed_before + slots,
            "every slot computing",
            engine_server,
        )
        # Queue requests of another width (they never join a busy batch), then hang up on them.
        gone = [raw_request(100.0 + i, width=2) for i in range(2)]
        for sock in gone:
            sock.close()
        # The server saw both hang-ups while they were queued: each is a failed request...
        _wait_for(
            lambda: (
                _stats(engine_server, "tinyqueue")["inference_stats"]["fail"]["count"]
                >= failed_before + 2
            ),
            "both hung-up requests cancelled",
            engine_server,
        )
    finally:
        release.touch()  # never leave the model held, pass or fail
    for sock in busy:
        assert b" 200 " in sock.recv(65536).split(b"\r\n")[0]
        sock.close()
    # ...and the model never saw their rows, even once every slot was free again: a later
    # request is computed, the hung-up ones are not.
    response = post(engine_server, "tinyqueue", body([7.0], sleep=0.01))
    assert response.status_code == 200
    assert 7.0 in computed()
    assert not {100.0, 101.0} & set(computed()), computed()
