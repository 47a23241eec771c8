"""Under stress, end to end: a real ``mlpack start`` on loopback, judged by server-side
events (marker files the model writes, readiness answers, process ids and memory read
from /proc), never by how long something took. Loops are bounded; the only timeouts are
safety nets for a broken build."""

from __future__ import annotations

import concurrent.futures
import os
import selectors
import shutil
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from mlpack.proto import inference_pb2 as pb
from mlpack.proto import inference_pb2_grpc as pb_grpc
from tests.helpers.server import ASSETS, REPO, RunningServer, start_server

pytestmark = pytest.mark.e2e

SAFETY = 60.0


# -- helpers ---------------------------------------------------------------------------
def payload(value: float, **parameters: Any) -> dict[str, Any]:
    return {
        "parameters": parameters or None,
        "inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [value]}],
    }


def infer(server: RunningServer, model: str, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    kwargs.setdefault("timeout", SAFETY)
    return httpx.post(f"{server.url}/v2/models/{model}/infer", json=body, **kwargs)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def wait_until(condition: Callable[[], bool], what: str) -> None:
    event = threading.Event()
    for _ in range(int(SAFETY / 0.02)):
        if condition():
            return
        event.wait(0.02)
    raise AssertionError(f"never happened: {what}")


def ready(server: RunningServer) -> int:
    return httpx.get(server.url + "/v2/health/ready", timeout=SAFETY).status_code


def proc_status(pid: int, field: str) -> int:
    """A kB figure from /proc/PID/status (VmRSS: now, VmHWM: peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def children(pid: int) -> list[int]:
    """The worker processes of server ``pid`` (not multiprocessing's resource tracker)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in command:
                found.append(int(child))
    return found


def pool_metrics(server: RunningServer, pool: str = "default") -> dict[str, float]:
    """The default pool's health series from the metrics endpoint, by name."""
    text = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=SAFETY).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("worker_pool_") and f'pool="{pool}"' in line:
            found[line.split("{", 1)[0]] = float(line.rsplit(" ", 1)[1])
    return found


def stress_folder(tmp_path: Path, *models: str) -> Path:
    folder = tmp_path / "models"
    for model in models:
        shutil.copytree(ASSETS / "stress" / model, folder / model)
    return folder


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    started: list[RunningServer] = []

    def run(*models: str, **kwargs: Any) -> RunningServer:
        server = start_server(stress_folder(tmp_path, *models), tmp_path, **kwargs)
        started.append(server)
        return server

    yield run
    for server in started:
        server.stop(signal.SIGKILL)


# -- (1) answers leave as computed; abandoned work is dropped ------------------------
def test_burst_answers_leave_as_each_is_computed(serve: Any, tmp_path: Path) -> None:
    server = serve("gated")
    marker = tmp_path / "burst"
    done_at_arrival: list[int] = []

    def call(_: int) -> int:
        response = infer(server, "gated", payload(0.2, marker=str(marker)))
        done_at_arrival.append(sum(1 for line in lines(marker) if line.startswith("done")))
        return response.status_code

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(call, range(12)))
    assert statuses == [200] * 12
    # Bunched release would deliver every answer after the 12th compute ended; here most
    # answers arrive while the model still has work queued.
    assert sum(1 for done in done_at_arrival if done < 12) >= 6, done_at_arrival


def _abandon(server: RunningServer, body: bytes) -> None:
    """Send one infer request on a raw socket and hang up without reading the answer."""
    with socket.create_connection(("127.0.0.1", server.http_port)) as sock:
        head = (
            "POST /v2/models/gated/infer HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        sock.sendall(head.encode() + body)


def test_work_whose_client_left_is_not_computed(serve: Any, tmp_path: Path) -> None:
    server = serve("gated")
    marker, gate = tmp_path / "marker", tmp_path / "gate"
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        held = pool.submit(infer, server, "gated", payload(1, marker=str(marker), gate=str(gate)))
        wait_until(lambda: "started 1" in lines(marker), "the first request started")
        import orjson

        for value in range(2, 12):
            _abandon(server, orjson.dumps(payload(value, marker=str(marker))))
        assert ready(server) == 200  # one loop round trip after the hang-ups
        gate.touch()
        assert held.result(SAFETY).status_code == 200
    assert infer(server, "gated", payload(0, marker=str(marker))).status_code == 200
    assert [line for line in lines(marker) if line.startswith("started")] == [
        "started 1",
        "started 0",
    ]


# -- (2) deadlines ----------------------------------------------------------------------
def test_deadline_over_rest_is_504_and_expired_work_is_not_started(
    serve: Any, tmp_path: Path
) -> None:
    server = serve("gated")
    marker, gate = tmp_path / "marker", tmp_path / "gate"
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        held = pool.submit(infer, server, "gated", payload(1, marker=str(marker), gate=str(gate)))
        wait_until(lambda: "started 1" in lines(marker), "the first request started")
        late = infer(
            server, "gated", payload(2, marker=str(marker)), headers={"Inference-Timeout": "0.2"}
        )
        assert late.status_code == 504 and "deadline" in late.json()["error"]
        assert not held.done()  # the 504 came while the model was still held
        bad = infer(server, "gated", payload(3), headers={"Inference-Timeout": "soon"})
        assert bad.status_code == 400 and "Inference-Timeout" in bad.json()["error"]
        gate.touch()
        assert held.result(SAFETY).status_code == 200
    assert infer(server, "gated", payload(0, marker=str(marker))).status_code == 200
    assert "started 2" not in lines(marker)


def test_model_inference_timeout_is_deadline_exceeded_over_grpc(serve: Any, tmp_path: Path) -> None:
    server = serve("timed")
    gate = tmp_path / "gate"
    request = pb.ModelInferRequest(model_name="timed")
    request.parameters["gate"].string_param = str(gate)
    tensor = request.inputs.add(name="x", datatype="FP64", shape=[1])
    tensor.contents.fp64_contents.append(1.0)
    with grpc.insecure_channel(server.grpc_address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.ModelInfer(request, timeout=SAFETY)  # the server's limit (0.5 s) comes first
        assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "deadline" in (raised.value.details() or "")
        gate.touch()


# -- (3, 4) workers: hung models, stopped and crash-looping workers ----------------------
def test_a_hung_model_does_not_block_another_model(serve: Any, tmp_path: Path) -> None:
    server = serve("gated", "echo", settings={"parallel_workers": 2})
    marker, gate = tmp_path / "marker", tmp_path / "gate"
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        hung = [
            pool.submit(infer, server, "gated", payload(i, marker=str(marker), gate=str(gate)))
            for i in range(1, 5)
        ]
        wait_until(lambda: len(lines(marker)) >= 1, "a hung request started")
        for value in range(5):  # every echo answered while four gated requests hang
            response = infer(server, "echo", payload(value))
            assert response.status_code == 200 and response.json()["outputs"][0]["data"] == [value]
        assert not any(call.done() for call in hung)
        gate.touch()
        assert [call.result(SAFETY).status_code for call in hung] == [200] * 4


def test_a_stopped_worker_is_replaced_and_readiness_follows(serve: Any) -> None:
    server = serve(
        "echo",
        settings={
            "parallel_workers": 1,
            "worker_ping_interval": 0.2,
            "worker_ping_timeout": 1.0,
        },
    )
    workers = children(server.process.pid)
    assert len(workers) == 1
    os.kill(workers[0], signal.SIGSTOP)
    wait_until(lambda: ready(server) == 503, "readiness went false")
    wait_until(lambda: ready(server) == 200, "readiness came back")
    assert infer(server, "echo", payload(1)).status_code == 200
    assert workers[0] not in children(server.process.pid)
    assert "did not answer a ping" in server.log()
    metrics = pool_metrics(server)
    assert metrics["worker_pool_hung_total"] == 1 and metrics["worker_pool_restarts_total"] >= 1
    assert metrics["worker_pool_live_workers"] == 1


def test_a_crash_looping_worker_keeps_being_retried(serve: Any, tmp_path: Path) -> None:
    flag = tmp_path / "no-start"
    server = serve(
        "fragile",
        settings={
            "parallel_workers": 1,
            "worker_max_restart_backoff": 0.2,
            "worker_ping_interval": 0,
        },
        env={"MLPACK_TEST_FRAGILE_FLAG": str(flag)},
    )
    flag.touch()
    os.kill(children(server.process.pid)[0], signal.SIGKILL)
    wait_until(
        lambda: server.log().count("starting a replacement for worker") >= 4,
        "several failed restarts",
    )
    assert ready(server) == 503
    down = pool_metrics(server)
    assert down["worker_pool_failed_starts_total"] >= 3 and down["worker_pool_live_workers"] == 0
    refused = infer(server, "fragile", payload(1))
    assert refused.status_code == 503 and refused.headers["retry-after"]
    assert "error" in refused.json()
    flag.unlink()
    wait_until(lambda: ready(server) == 200, "readiness came back")
    assert infer(server, "fragile", payload(1)).status_code == 200


# -- (5, 6, 7) limits and connection hygiene ------------------------------------------------
def test_body_over_the_limit_is_413_before_it_is_read(serve: Any) -> None:
    server = serve("echo", settings={"max_request_size": 1024 * 1024})
    pid = server.process.pid
    assert infer(server, "echo", payload(1)).status_code == 200
    peak = proc_status(pid, "VmHWM")
    with socket.create_connection(("127.0.0.1", server.http_port)) as sock:
        size = 200 * 1024 * 1024
        sock.sendall(
            b"POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            + f"\r\nContent-Length: {size}\r\n\r\n".encode()
            + b"[" * 65536
        )
        chunk, sent = b" " * (1024 * 1024), 0
        try:
            while sent < size:  # the server answers and hangs up long before the end
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 413") and b'"error"' in answer
    assert b"max_request_size" in answer
    assert proc_status(pid, "VmHWM") - peak < 20 * 1024  # kB: the body was never held
    header = {"X-Big": "y" * (70 * 1024)}
    too_big = httpx.get(server.url + "/v2/health/live", headers=header, timeout=SAFETY)
    assert too_big.status_code == 431 and "error" in too_big.json()
    assert infer(server, "echo", payload(2)).status_code == 200


def _read_all(sock: socket.socket) -> bytes:
    sock.settimeout(SAFETY)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def test_idle_and_slow_connections_are_closed_while_clients_are_served(serve: Any) -> None:
    server = serve(
        "echo",
        settings={
            "timeout_keep_alive": 1.0,
            "timeout_request_head": 1.0,
            "timeout_request_body": 1.0,
        },
    )
    address = ("127.0.0.1", server.http_port)
    idle = [socket.create_connection(address) for _ in range(1000)]
    slow_head = [socket.create_connection(address) for _ in range(100)]
    slow_body = [socket.create_connection(address) for _ in range(100)]
    for sock in slow_head:
        sock.sendall(b"POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\n")
    for sock in slow_body:
        sock.sendall(
            b"POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 99\r\n\r\n{"
        )
    everyone = idle + slow_head + slow_body
    selector = selectors.DefaultSelector()
    for sock in everyone:
        selector.register(sock, selectors.EVENT_READ)
    closed: set[socket.socket] = set()
    answers: list[int] = []
    with httpx.Client(timeout=SAFETY) as client:
        for _ in range(int(SAFETY * 10)):
            answers.append(
                client.post(
                    f"{server.url}/v2/models/echo/infer", json=payload(len(answers))
                ).status_code
            )
            for key, _ in selector.select(timeout=0.1):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    data = b""
                if not data:  # EOF (a 408 may come before it)
                    closed.add(sock)
                    selector.unregister(sock)
            if len(closed) == len(everyone):
                break
    for sock in everyone:
        sock.close()
    assert len(closed) == len(everyone)
    assert answers and set(answers) == {200}


def test_connections_beyond_the_cap_are_refused_cleanly(serve: Any) -> None:
    server = serve("echo", settings={"max_connections": 20})
    address = ("127.0.0.1", server.http_port)
    with httpx.Client(timeout=SAFETY) as client:
        assert client.post(f"{server.url}/v2/models/echo/infer", json=payload(1)).status_code == 200
        held = [socket.create_connection(address) for _ in range(19)]  # 20 with the client's
        refused = socket.create_connection(address)
        answer = _read_all(refused)
        assert answer.startswith(b"HTTP/1.1 503") and b"retry-after" in answer.lower()
        # The connections already open keep working.
        assert client.post(f"{server.url}/v2/models/echo/infer", json=payload(2)).status_code == 200
        for sock in [*held, refused]:
            sock.close()


# -- (8) memory ---------------------------------------------------------------------------------
def test_failing_requests_free_their_memory_without_the_cycle_collector(serve: Any) -> None:
    launcher = (str(REPO / "tests" / "helpers" / "gc_off.py"),)
    server = serve("echo", launcher=launcher)
    pid = server.process.pid
    wrong = {
        "inputs": [{"name": "x", "datatype": "FP64", "shape": [3], "data": [0.5] * 1_000_000}]
    }  # shape says 3: 400 after parsing
    import orjson

    body = orjson.dumps(wrong)  # ~4 MB of JSON, ~60 MB once parsed into Python objects
    with httpx.Client(timeout=SAFETY) as client:
        first = client.post(
            f"{server.url}/v2/models/echo/infer",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        assert first.status_code == 400 and "error" in first.json()
        before = proc_status(pid, "VmRSS")
        for _ in range(8):
            response = client.post(
                f"{server.url}/v2/models/echo/infer",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            assert response.status_code == 400
        grpc_request = pb.ModelInferRequest(model_name="echo")
        tensor = grpc_request.inputs.add(name="x", datatype="FP64", shape=[3])
        tensor.contents.fp64_contents.extend([0.5] * 1_000_000)
        with grpc.insecure_channel(server.grpc_address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            for _ in range(4):
                with pytest.raises(grpc.RpcError) as raised:
                    stub.ModelInfer(grpc_request, timeout=SAFETY)
                assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # Eight leaked requests would hold several hundred MB; allowance: allocator slack.
    assert proc_status(pid, "VmRSS") - before < 120 * 1024


def test_recycling_bounds_a_leaky_model_without_failing_a_request(serve: Any) -> None:
    server = serve("leaky", settings={"parallel_workers": 1, "max_requests_per_worker": 10})
    pids, rss = set(), []
    with httpx.Client(timeout=SAFETY) as client:
        for value in range(60):
            response = client.post(f"{server.url}/v2/models/leaky/infer", json=payload(value))
            assert response.status_code == 200, response.text
            pid, kb = response.json()["outputs"][0]["data"]
            pids.add(pid)
            rss.append(kb)
    assert len(pids) >= 5  # recycled at 10 requests (+ up to 1 of jitter) each
    # 60 requests x 5 MB would be 300 MB in one process; each worker keeps at most ~11.
    assert max(rss) - min(rss) < 100 * 1024


# -- (9) graceful shutdown -------------------------------------------------------------------
@pytest.mark.parametrize("workers", [0, 2], ids=["in-process", "2-workers"])
def test_sigterm_loses_no_accepted_request(serve: Any, tmp_path: Path, workers: int) -> None:
    server = serve("gated", settings={"parallel_workers": workers, "drain_delay": 0.5})
    marker = tmp_path / "marker"
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        calls = [
            pool.submit(infer, server, "gated", payload(0.3, marker=str(marker))) for _ in range(12)
        ]
        wait_until(lambda: len(lines(marker)) >= 1, "the first request started")
        assert ready(server) == 200  # one loop round trip: all 12 were received
        server.process.send_signal(signal.SIGTERM)
        statuses = [call.result(SAFETY).status_code for call in calls]
    assert statuses == [200] * 12
    assert server.process.wait(SAFETY) == 0
