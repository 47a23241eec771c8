"""``mlpack start --frontends 2``: two front-end processes on shared ports, one supervisor.

Connections are opened fresh for each request: the kernel (SO_REUSEPORT) spreads
connections, not requests, over the front-ends. Timeouts here are safety nets against a
hung server; what passes or fails is behaviour (counters, pids, statuses).
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from tests.helpers.frontends import scrape as _metrics
from tests.helpers.frontends import wait_until as _wait
from tests.helpers.server import ASSETS, RunningServer, start_server

pytestmark = pytest.mark.e2e

ECHO = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1.5]}]}
SAFETY = 30.0  # seconds: a request that takes longer is a hang


def _post(server: RunningServer, path: str, body: Any = None) -> httpx.Response:
    """One request on a fresh connection."""
    with httpx.Client(timeout=SAFETY) as client:
        return client.post(server.url + path, json=body if body is not None else {})


def _all_ready(server: RunningServer, count: int = 2) -> bool:
    metrics = _metrics(server)
    return all(metrics.get(f'frontend_ready{{frontend="{i}"}}') == 1.0 for i in range(count))


def _frontend_pids(server: RunningServer) -> set[int]:
    """The supervisor's front-end children (not multiprocessing's resource tracker)."""
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    found = set()
    for child in children:
        with open(f"/proc/{child}/cmdline", "rb") as file:
            if b"spawn_main" in file.read():
                found.add(int(child))
    return found


def _served(server: RunningServer) -> dict[str, float]:
    metrics = _metrics(server)
    return {i: metrics.get(f'frontend_requests_total{{frontend="{i}"}}', 0.0) for i in ("0", "1")}


def _grpc_stub(server: RunningServer) -> Any:
    from mlpack.proto import inference_pb2_grpc as pb_grpc

    channel = grpc.insecure_channel(server.grpc_address)
    return channel, pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]


def _grpc_infer(server: RunningServer, model: str) -> Any:
    from mlpack.proto import inference_pb2 as pb

    channel, stub = _grpc_stub(server)
    with channel:
        tensor = pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP64", shape=[1])
        tensor.contents.fp64_contents.append(1.5)
        return stub.ModelInfer(
            pb.ModelInferRequest(model_name=model, inputs=[tensor]), timeout=SAFETY
        )


@pytest.fixture
def frontends(tmp_path: Path) -> Iterator[RunningServer]:
    folder = tmp_path / "models"
    shutil.copytree(ASSETS / "frontends", folder)
    server = start_server(
        folder, tmp_path, settings={"drain_delay": 3.0}, args=("--frontends", "2")
    )
    server.extra["folder"] = folder
    try:
        _wait(lambda: _all_ready(server), "both front-ends ready", server)
        yield server
    finally:
        server.stop(signal.SIGKILL)


def test_requests_land_on_both_and_metrics_sum(frontends: RunningServer) -> None:
    server = frontends
    assert len(_frontend_pids(server)) == 2
    before = _served(server)
    for _ in range(30):
        assert _post(server, "/v2/models/echo/infer", ECHO).status_code == 200
    for _ in range(10):
        _grpc_infer(server, "echo")
    after = _served(server)
    # Both front-ends answered some of the 40 fresh connections ...
    assert after["0"] > before["0"] and after["1"] > before["1"], (before, after)
    # ... and one scrape sums them: every inference counted exactly once.
    metrics = _metrics(server)
    success = metrics['model_infer_request_success_total{model_name="echo",model_version=""}']
    assert success == 40.0
    handled = metrics['grpc_server_handled_total{grpc_code="OK",grpc_method="ModelInfer"}']
    assert handled == 10.0


def test_a_killed_frontend_is_replaced_and_no_request_hangs(frontends: RunningServer) -> None:
    server = frontends
    pids = _frontend_pids(server)
    victim = min(pids)

    def call(i: int) -> str:
        try:
            response = _post(server, "/v2/models/echo/infer", ECHO)
        except httpx.TimeoutException:
            return "hang"
        except httpx.TransportError:
            return "reset"  # its connection went with the killed process: an error, at once
        return str(response.status_code)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(call, i) for i in range(40)]
        while not any(f.done() for f in futures):
            time.sleep(0.01)
        os.kill(victim, signal.SIGKILL)
        results = [f.result() for f in futures]
    assert "hang" not in results and set(results) <= {"200", "reset"}, results
    _wait(
        lambda: (
            _metrics(server).get('frontend_restarts_total{frontend="0"}', 0)
            + _metrics(server).get('frontend_restarts_total{frontend="1"}', 0)
            == 1.0
        ),
        "one restart",
        server,
    )
    _wait(lambda: _all_ready(server), "the replacement ready", server)
    now = _frontend_pids(server)
    assert len(now) == 2 and victim not in now and (pids - {victim}) < now
    before = _served(server)
    statuses = [_post(server, "/v2/models/echo/infer", ECHO).status_code for _ in range(30)]
    assert statuses == [200] * 30
    after = _served(server)
    assert after["0"] > before["0"] and after["1"] > before["1"], (before, after)


def _index_states(server: RunningServer, times: int = 16) -> set[str]:
    seen = set()
    for _ in range(times):
        items = _post(server, "/v2/repository/index").json()
        seen.add(next(item["state"] for item in items if item["name"] == "echo"))
    return seen


def test_load_and_unload_reach_every_frontend(frontends: RunningServer) -> None:
    from mlpack.proto import inference_pb2 as pb

    server = frontends
    before = _served(server)
    assert _post(server, "/v2/repository/models/echo/unload").status_code == 200
    # Answered only once both front-ends unloaded: every connection sees it at once.
    assert _index_states(server) == {"UNAVAILABLE"}
    statuses = {_post(server, "/v2/models/echo/infer", ECHO).status_code for _ in range(16)}
    assert 200 not in statuses, statuses
    after = _served(server)
    assert after["0"] > before["0"] and after["1"] > before["1"], (before, after)
    # An unknown model is refused once, with the same error as one front-end gives.
    missing = _post(server, "/v2/repository/models/nosuch/load")
    assert missing.status_code == 404 and "nosuch" in missing.json()["error"]
    # A replacement replays the unload: the index stays the same on every connection.
    os.kill(min(_frontend_pids(server)), signal.SIGKILL)
    _wait(
        lambda: (
            sum(v for k, v in _metrics(server).items() if k.startswith("frontend_restarts")) == 1.0
        ),
        "one restart",
        server,
    )
    _wait(lambda: _all_ready(server), "the replacement ready", server)
    assert _index_states(server) == {"UNAVAILABLE"}
    # It started from the index: it never loaded the model its peers had unloaded.
    assert server.log().count("model 'echo' ready in") == 2, server.log()
    # Load over gRPC: every front-end serves the model again.
    channel, stub = _grpc_stub(server)
    with channel:
        stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="echo"), timeout=SAFETY)
    assert _index_states(server) == {"READY"}
    statuses = {_post(server, "/v2/models/echo/infer", ECHO).status_code for _ in range(16)}
    assert statuses == {200}
    assert len(re.findall(r"repository \w+ of model 'echo' applied", server.log())) == 2
    assert server.log().count("model 'echo' ready in") == 4


def test_sigterm_drains_every_frontend(frontends: RunningServer) -> None:
    server = frontends
    folder = server.extra["folder"] / "gated"
    started = folder / "started"

    def holders() -> list[int]:
        return [int(p) for p in started.read_text().split()] if started.exists() else []

    pool = concurrent.futures.ThreadPoolExecutor(16)
    futures = []
    try:
        # Fresh connections until both front-ends hold a request (each one waits on the gate).
        for i in range(16):
            futures.append(pool.submit(_post, server, "/v2/models/gated/infer", ECHO))
            _wait(lambda n=i + 1: len(holders()) == n, f"request {i + 1} started", server)
            if len(set(holders())) == 2:
                break
        assert set(holders()) == _frontend_pids(server), holders()
        os.kill(server.process.pid, signal.SIGTERM)  # the supervisor only, as Kubernetes does
        # Readiness goes false while the front-ends still serve (drain_delay) ...
        _wait(lambda: _get_status(server, "/v2/health/ready") == 503, "readiness false", server)
        assert all(not f.done() for f in futures)
        # ... and every accepted request still finishes with 200 once the gate opens.
        (folder / "release").touch()
        statuses = [f.result(timeout=SAFETY).status_code for f in futures]
        assert statuses == [200] * len(futures)
        assert server.process.wait(SAFETY) == 0, server.log()
        assert server.log().count("[mlpack.server] stopped") == 2
    finally:
        (folder / "release").touch()
        pool.shutdown()


def _get_status(server: RunningServer, path: str) -> int:
    try:
        with httpx.Client(timeout=SAFETY) as client:
            return client.get(server.url + path).status_code
    except httpx.TransportError:
        return 0


def _success(server: RunningServer) -> float:
    return _metrics(server)['model_infer_request_success_total{model_name="echo",model_version=""}']


def _restarts(server: RunningServer) -> float:
    return sum(v for k, v in _metrics(server).items() if k.startswith("frontend_restarts_total"))


def test_counters_never_go_back_when_a_frontend_dies(frontends: RunningServer) -> None:
    server = frontends
    for _ in range(20):
        assert _post(server, "/v2/models/echo/infer", ECHO).status_code == 200
    first, served = _success(server), _served(server)
    assert first == 20.0 and served["0"] > 0 and served["1"] > 0, served
    os.kill(min(_frontend_pids(server)), signal.SIGKILL)
    _wait(lambda: _restarts(server) == 1.0, "one restart", server)
    _wait(lambda: _all_ready(server), "the replacement ready", server)
    # The dead front-end's counters stay in the sum (it was collected at the first scrape).
    second = _success(server)
    assert second >= first, (first, second)
    again = _served(server)
    assert again["0"] >= served["0"] and again["1"] >= served["1"], (served, again)
    for _ in range(15):
        assert _post(server, "/v2/models/echo/infer", ECHO).status_code == 200
    assert _success(server) == second + 15


def _stats(server: RunningServer) -> dict[str, Any]:
    with httpx.Client(timeout=SAFETY) as client:  # a fresh connection: either front-end
        response = client.get(server.url + "/v2/models/echo/stats")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_stats_and_dashboard_from_either_frontend_cover_both(frontends: RunningServer) -> None:
    server = frontends
    for _ in range(24):
        assert _post(server, "/v2/models/echo/infer", ECHO).status_code == 200
    served = _served(server)
    assert served["0"] > 0 and served["1"] > 0, served  # the requests were spread
    answered_by: set[int] = set()
    for _ in range(40):  # fresh connections until both front-ends answered one
        body = _stats(server)
        (stats,) = body["model_stats"]
        note = body["frontends"]
        assert note["answered"] == [0, 1] and note["missing"] == [] and note["complete"], note
        assert stats["inference_count"] == 24
        assert stats["inference_stats"]["success"]["count"] == 24
        answered_by.add(note["frontend"])
        if answered_by == {0, 1}:
            break
    assert answered_by == {0, 1}
    with httpx.Client(timeout=SAFETY) as client:
        data = client.get(server.url + "/v2/dashboard/data.json?window=300").json()
    assert data["frontends"]["complete"] and data["workers"] == 2
    (model,) = [m for m in data["models"] if m["name"] == "echo"]
    assert sum(model["series"]["rps"]) == 24


def test_stats_and_dashboard_keep_a_dead_frontends_figures(frontends: RunningServer) -> None:
    server = frontends
    for _ in range(24):
        assert _post(server, "/v2/models/echo/infer", ECHO).status_code == 200
    served = _served(server)
    assert served["0"] > 0 and served["1"] > 0, served  # the victim served some of them
    # A scrape makes the supervisor collect every front-end's figures, /stats' included.
    assert _success(server) == 24.0
    os.kill(min(_frontend_pids(server)), signal.SIGKILL)
    _wait(lambda: _restarts(server) == 1.0, "one restart", server)
    _wait(lambda: _all_ready(server), "the replacement ready", server)
    answered_by: set[int] = set()
    for _ in range(40):  # fresh connections until both front-ends answered one
        body = _stats(server)
        (stats,) = body["model_stats"]
        note = body["frontends"]
        assert note["retired"] == 1 and note["complete"], note
        assert stats["inference_count"] == 24  # never goes back
        assert stats["inference_stats"]["success"]["count"] == 24
        answered_by.add(note["frontend"])
        if answered_by == {0, 1}:
            break
    assert answered_by == {0, 1}
    with httpx.Client(timeout=SAFETY) as client:
        data = client.get(server.url + "/v2/dashboard/data.json?window=300").json()
    assert data["frontends"]["retired"] == 1 and data["workers"] == 2
    (model,) = [m for m in data["models"] if m["name"] == "echo"]
    assert sum(model["series"]["rps"]) == 24
    for _ in range(12):  # the replacement's own counts add on top
        assert _post(server, "/v2/models/echo/infer", ECHO).status_code == 200
    assert _stats(server)["model_stats"][0]["inference_count"] == 36
