"""``--frontends 2`` with worker pools: the supervisor owns the pools, both front-ends share them.

The model (``tests/assets/shared_pools/pids``) answers with the id of the process that
computed, appends the id of each process that loads it to ``loads`` (and that unloads
it to ``unloads``), and holds requests marked ``hold`` until the test creates
``release``. Fresh connections per request: the kernel spreads connections over the
front-ends. Timeouts are safety nets against a hang; what passes is behaviour.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.frontends import scrape as _metrics
from tests.helpers.frontends import wait_until as _wait
from tests.helpers.server import ASSETS, RunningServer, start_server

pytestmark = pytest.mark.e2e

SAFETY = 60.0  # seconds: a request that takes longer is a hang
BODY = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1.0]}]}
HOLD = {**BODY, "parameters": {"hold": True}}


def _post(server: RunningServer, path: str, body: Any = None) -> httpx.Response:
    with httpx.Client(timeout=SAFETY) as client:
        return client.post(server.url + path, json=body if body is not None else {})


def _infer(server: RunningServer, body: Any = BODY, model: str = "pids") -> httpx.Response:
    return _post(server, f"/v2/models/{model}/infer", body)


def _pid(response: httpx.Response) -> int:
    assert response.status_code == 200, response.text
    return int(response.json()["outputs"][0]["data"][0])


def _lines(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def _served(server: RunningServer) -> dict[str, float]:
    metrics = _metrics(server)
    return {i: metrics.get(f'frontend_requests_total{{frontend="{i}"}}', 0.0) for i in ("0", "1")}


def _ready(server: RunningServer) -> bool:
    metrics = _metrics(server)
    return all(metrics.get(f'frontend_ready{{frontend="{i}"}}') == 1.0 for i in range(2))


def _worker_frontends(server: RunningServer, pool: str = "model:pids") -> list[float]:
    """Front-ends connected to each live worker of ``pool`` (the supervisor's gauge)."""
    prefix = f'worker_pool_worker_frontends{{pool="{pool}",'
    return [v for k, v in _metrics(server).items() if k.startswith(prefix)]


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def _named(server: RunningServer, what: str) -> set[int]:
    """Children of the supervisor whose log line says they are front-ends."""
    pids = set()
    for line in server.log().splitlines():
        if f"{what} " in line and "starting (pid " in line:
            pids.add(int(line.rsplit("pid ", 1)[1].rstrip(")")))
    return {pid for pid in pids if Path(f"/proc/{pid}").exists()}


def _held(server: RunningServer, count: int) -> tuple[Any, list[concurrent.futures.Future[Any]]]:
    executor = concurrent.futures.ThreadPoolExecutor(count)
    return executor, [executor.submit(_infer, server, HOLD) for _ in range(count)]


def _start(tmp_path: Path, settings: dict[str, Any], model: dict[str, Any]) -> RunningServer:
    folder = tmp_path / "models"
    shutil.copytree(ASSETS / "shared_pools", folder)
    (folder / "pids" / "model-settings.json").write_text(json.dumps(model))
    server = start_server(
        folder,
        tmp_path,
        settings={"worker_ping_interval": 0.3, **settings},
        args=("--frontends", "2"),
        timeout=120,
    )
    server.extra["model"] = folder / "pids"
    _wait(lambda: _ready(server), "both front-ends ready", server)
    return server


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[RunningServer]:
    """Two front-ends, one model in its own pool of 2 workers that load it themselves."""
    model = {
        "name": "pids",
        "implementation": "models.PidModel",
        "parallel_workers": 2,
        "preload": False,
    }
    server = _start(tmp_path, {"drain_delay": 1.0}, model)
    try:
        yield server
    finally:
        (server.extra["model"] / "release").touch()
        server.stop(signal.SIGKILL)


def _grpc_pid(server: RunningServer) -> int:
    import grpc

    from mlpack.proto import inference_pb2 as pb
    from mlpack.proto import inference_pb2_grpc as pb_grpc

    with grpc.insecure_channel(server.grpc_address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        tensor = pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP64", shape=[1])
        tensor.contents.fp64_contents.append(1.0)
        reply = stub.ModelInfer(pb.ModelInferRequest(model_name="pids", inputs=[tensor]))
    index = next(i for i, o in enumerate(reply.outputs) if o.name == "pid")
    if reply.raw_output_contents:  # INT64, little-endian
        return int.from_bytes(reply.raw_output_contents[index][:8], "little", signed=True)
    return int(reply.outputs[index].contents.int64_contents[0])


def _two_workers_serve(server: RunningServer) -> set[int]:
    """Hold 4 calls: each front-end puts its second call on the other worker, so both
    workers compute one; release them; the pids that answered."""
    model = server.extra["model"]
    (model / "release").unlink(missing_ok=True)
    (model / "started").unlink(missing_ok=True)
    executor, futures = _held(server, 4)
    with executor:
        _wait(lambda: len(_lines(model / "started")) >= 2, "both workers busy", server)
        (model / "release").touch()
        return {_pid(f.result()) for f in futures}


def test_one_pool_serves_both_frontends_and_loads_once_per_worker(
    shared: RunningServer,
) -> None:
    server, model = shared, shared.extra["model"]
    loads = _lines(model / "loads")
    assert len(loads) == 2, loads  # 2 workers, not 2 per front-end
    frontends = _named(server, "front-end")
    assert len(frontends) == 2 and not (set(loads) & frontends)
    before = _served(server)
    pids: set[int] = set()
    for _ in range(3):
        pids |= _two_workers_serve(server)
    pids |= {_pid(_infer(server)) for _ in range(20)}
    assert pids == set(loads)  # exactly the 2 shared workers, whichever front-end answered
    assert {_grpc_pid(server) for _ in range(6)} <= pids  # gRPC reaches the same workers
    after = _served(server)
    assert after["0"] > before["0"] and after["1"] > before["1"], (before, after)
    _wait(lambda: _worker_frontends(server) == [2.0, 2.0], "both front-ends on each", server)
    assert len(_lines(model / "loads")) == 2
    log = server.log()
    assert log.count("shared by every front-end: pool model:pids: 2 processes") == 1, log


def test_a_killed_worker_fails_its_calls_at_once_and_its_replacement_is_shared(
    shared: RunningServer,
) -> None:
    server, model = shared, shared.extra["model"]
    workers = set(_lines(model / "loads"))
    (model / "release").unlink(missing_ok=True)
    executor, futures = _held(server, 4)
    with executor:
        _wait(lambda: len(_lines(model / "started")) >= 2, "both workers busy", server)
        victim = _lines(model / "started")[0]
        os.kill(victim, signal.SIGKILL)
        # The calls on the victim fail with 503 while the others are still held.
        _wait(lambda: any(f.done() for f in futures), "the victim's calls to fail", server)
        failed = [f.result() for f in futures if f.done()]
        assert failed and all(r.status_code == 503 for r in failed), [r.text for r in failed]
        assert not (model / "release").exists()
        (model / "release").touch()
        statuses = sorted(f.result().status_code for f in futures)
    assert set(statuses) <= {200, 503} and 200 in statuses, statuses
    _wait(lambda: len(_lines(model / "loads")) == 3, "a replacement worker", server)
    replacement = _lines(model / "loads")[2]
    assert replacement not in workers
    _wait(lambda: _worker_frontends(server) == [2.0, 2.0], "both front-ends on each", server)
    assert _two_workers_serve(server) == (workers - {victim}) | {replacement}


def test_a_killed_frontend_is_replaced_on_the_same_workers(shared: RunningServer) -> None:
    server, model = shared, shared.extra["model"]
    workers = set(_lines(model / "loads"))
    victim = min(_named(server, "front-end"))
    os.kill(victim, signal.SIGKILL)
    _wait(
        lambda: (
            sum(v for k, v in _metrics(server).items() if k.startswith("frontend_restarts")) == 1.0
        ),
        "one restart",
        server,
    )
    _wait(lambda: _ready(server), "the replacement ready", server)
    _wait(lambda: _worker_frontends(server) == [2.0, 2.0], "both front-ends on each", server)
    assert set(_lines(model / "loads")) == workers  # no new model loads
    before = _served(server)
    pids = {_pid(_infer(server)) for _ in range(30)} | _two_workers_serve(server)
    assert pids == workers
    after = _served(server)
    assert after["0"] > before["0"] and after["1"] > before["1"], (before, after)


def test_repository_unload_and_load_reach_the_pool_once(shared: RunningServer) -> None:
    server, model = shared, shared.extra["model"]
    assert _post(server, "/v2/repository/models/pids/unload").status_code == 200
    assert len(_lines(model / "unloads")) == 2  # once per worker, not per front-end
    assert all(_infer(server).status_code != 200 for _ in range(8))
    assert _post(server, "/v2/repository/models/pids/load").status_code == 200
    loads = _lines(model / "loads")
    assert len(loads) == 4, loads  # 2 at start, 2 now: one pool, not one per front-end
    assert {_pid(_infer(server)) for _ in range(20)} <= set(loads[2:])
    # A reload (load of a loaded model) also loads once, then drops the old instance once.
    assert _post(server, "/v2/repository/models/pids/load").status_code == 200
    assert len(_lines(model / "loads")) == 6
    _wait(lambda: len(_lines(model / "unloads")) == 4, "the old instance unloaded", server)


def _kill_a_frontend(server: RunningServer, restarts: float) -> None:
    """SIGKILL one front-end; wait until its replacement (restart number ``restarts``) is
    ready and connected to every worker again."""
    os.kill(min(_named(server, "front-end")), signal.SIGKILL)
    _wait(
        lambda: (
            sum(v for k, v in _metrics(server).items() if k.startswith("frontend_restarts"))
            == restarts
        ),
        f"restart {restarts:g}",
        server,
    )
    _wait(lambda: _ready(server), "the replacement ready", server)


def _states(server: RunningServer, times: int = 16) -> set[str]:
    """The model's state in the index, over fresh connections (both front-ends answer)."""
    seen = set()
    for _ in range(times):
        items = _post(server, "/v2/repository/index").json()
        seen.add(next(item["state"] for item in items if item["name"] == "pids"))
    return seen


def test_a_replacement_starts_from_the_current_index(shared: RunningServer) -> None:
    """An unloaded startup model stays unloaded in a replacement (never loaded there, so
    the pool does not load it again); a model loaded later joins what the pool holds."""
    server, model = shared, shared.extra["model"]
    assert _post(server, "/v2/repository/models/pids/unload").status_code == 200
    assert len(_lines(model / "unloads")) == 2
    _kill_a_frontend(server, 1.0)
    assert len(_lines(model / "loads")) == 2, _lines(model / "loads")  # no load at all
    assert _states(server) == {"UNAVAILABLE"}
    statuses = {_infer(server).status_code for _ in range(16)}
    assert 200 not in statuses, statuses
    assert _served(server)["0"] > 0 and _served(server)["1"] > 0
    # Loaded again through the API: a replacement now joins the pool's instance.
    assert _post(server, "/v2/repository/models/pids/load").status_code == 200
    workers = set(_lines(model / "loads")[2:])
    assert len(workers) == 2
    _kill_a_frontend(server, 2.0)
    _wait(lambda: _worker_frontends(server) == [2.0, 2.0], "both front-ends on each", server)
    assert len(_lines(model / "loads")) == 4  # the replacement loaded nothing
    assert _states(server) == {"READY"}
    assert {_pid(_infer(server)) for _ in range(20)} <= workers
    assert _two_workers_serve(server) == workers
    assert len(_lines(model / "unloads")) == 2  # and nothing was unloaded meanwhile


def test_a_stream_runs_through_a_shared_pool(shared: RunningServer) -> None:
    from httpx_sse import connect_sse

    server, model = shared, shared.extra["model"]
    url = server.url + "/v2/models/pids/infer_stream"
    workers = set(_lines(model / "loads"))
    for _ in range(4):  # fresh connections: both front-ends stream
        body = {**BODY, "parameters": {"count": 4}}
        with (
            httpx.Client(timeout=SAFETY) as client,
            connect_sse(client, "POST", url, json=body) as source,
        ):
            assert source.response.status_code == 200, server.log()
            chunks = [json.loads(event.data) for event in source.iter_sse()]
        assert [c["outputs"][1]["data"][0] for c in chunks] == [0, 1, 2, 3]
        assert {c["outputs"][0]["data"][0] for c in chunks} <= workers


def test_sigterm_drains_calls_on_shared_workers(shared: RunningServer) -> None:
    server, model = shared, shared.extra["model"]
    (model / "release").unlink(missing_ok=True)
    executor, futures = _held(server, 4)
    with executor:
        _wait(lambda: len(_lines(model / "started")) >= 2, "both workers busy", server)
        os.kill(server.process.pid, signal.SIGTERM)  # the supervisor: every front-end drains
        _wait(lambda: "shutting down: draining 2 front-end(s)" in server.log(), "the drain", server)
        (model / "release").touch()
        statuses = [f.result().status_code for f in futures]
    assert statuses == [200] * 4, statuses
    assert server.process.wait(SAFETY) == 0
    log = server.log()
    run_folder = Path(log.split("workers' sockets in ", 1)[1].split()[0])
    assert run_folder.name.startswith("mlpack-run-") and not run_folder.exists(), log


def test_a_zygote_pool_and_an_environment_pool_are_shared(tmp_path: Path) -> None:
    venv = tmp_path / "venv"  # a cheap environment: another interpreter, no packages
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    model = {
        "name": "pids",
        "implementation": "models.PidModel",
        "parallel_workers": 2,
        "parameters": {"environment_path": str(venv)},
    }
    server = _start(tmp_path, {}, model)
    try:
        model_folder = server.extra["model"]
        loads = _lines(model_folder / "loads")
        assert len(loads) == 1, loads  # the zygote loaded it once; 2 workers forked from it
        pids = _two_workers_serve(server) | {_pid(_infer(server)) for _ in range(10)}
        assert len(pids) == 2 and loads[0] not in pids and not (pids & _named(server, "front-end"))
        pool = next(k for k in _metrics(server) if "worker_frontends" in k).split('"')[1]
        assert pool.startswith("env:"), pool
        _wait(lambda: _worker_frontends(server, pool) == [2.0, 2.0], "both on each", server)
        # A reload reloads the zygote once and rolls the workers: both front-ends follow.
        assert _post(server, "/v2/repository/models/pids/load").status_code == 200
        assert len(_lines(model_folder / "loads")) == 2
        _wait(lambda: not (_two_workers_serve(server) & pids), "the rolled workers", server)
    finally:
        (server.extra["model"] / "release").touch()
        server.stop(signal.SIGKILL)


def test_the_default_pool_is_shared_and_a_hung_call_gets_its_worker_replaced(
    tmp_path: Path,
) -> None:
    model = {"name": "pids", "implementation": "models.PidModel", "inference_timeout": 2.0}
    server = _start(tmp_path, {"parallel_workers": 2}, model)
    try:
        model_folder = server.extra["model"]
        workers = set(_lines(model_folder / "loads"))
        assert len(workers) == 2  # the default pool's 2 workers, not 2 per front-end
        assert {_pid(_infer(server)) for _ in range(20)} <= workers
        _wait(lambda: _worker_frontends(server, "default") == [2.0, 2.0], "both on each", server)
        # A call that never ends: past its deadline the caller gets an answer at once, and
        # past twice its deadline the front-end kills the worker; the supervisor replaces it.
        response = _infer(server, HOLD)
        assert response.status_code == 504, response.text
        hung = _lines(model_folder / "started")[0]
        _wait(lambda: len(_lines(model_folder / "loads")) == 3, "a replacement", server)
        assert not Path(f"/proc/{hung}").exists() or _zombie(hung)
        assert "ran past twice its deadline; killing the worker" in server.log()
        _wait(lambda: _worker_frontends(server, "default") == [2.0, 2.0], "both on each", server)
        replacement = set(_lines(model_folder / "loads")) - workers
        assert {_pid(_infer(server)) for _ in range(20)} <= (workers - {hung}) | replacement
    finally:
        (server.extra["model"] / "release").touch()
        server.stop(signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except OSError:
        return True


def _busy(server: RunningServer, pool: str = "model:pids") -> float | None:
    return _metrics(server).get(f'worker_pool_busy_ratio{{pool="{pool}"}}')


def _until_a_new_worker(server: RunningServer, known: set[int]) -> list[int]:
    """Call (each call must answer 200) until a worker not in ``known`` answers."""
    answered: list[int] = []
    for _ in range(400):  # a bound: recycling after 8 calls must happen well before
        answered.append(_pid(_infer(server)))
        if answered[-1] not in known:
            return answered
    raise AssertionError(f"no new worker after {len(answered)} calls:\n{server.log()}")


def test_shared_workers_are_recycled_without_pings(tmp_path: Path) -> None:
    """``max_requests_per_worker`` with ping interval 0: each worker reports reaching its
    limit (every front-end's calls counted), is replaced, and no request fails."""
    model = {
        "name": "pids",
        "implementation": "models.PidModel",
        "parallel_workers": 1,
        "preload": False,
    }
    limit = 8  # recycled after 8 predictions (jitter: up to limit // 10 = 0)
    server = _start(tmp_path, {"worker_ping_interval": 0, "max_requests_per_worker": limit}, model)
    try:
        model_folder = server.extra["model"]
        first = _lines(model_folder / "loads")
        assert len(first) == 1, first
        # Fresh connections: both front-ends call the worker; none of the calls fails.
        answered = _until_a_new_worker(server, set(first))
        assert answered[:limit] == first * limit  # the limit counts every front-end's calls
        second = answered[-1]
        answered += _until_a_new_worker(server, set(first) | {second})
        loads = _lines(model_folder / "loads")
        assert len(loads) == 3 and set(answered) == set(loads), (answered, loads)
        assert _metrics(server).get('worker_pool_recycled_total{pool="model:pids"}', 0) >= 2
        assert "recycled after" in server.log()
        assert _served(server)["0"] > 0 and _served(server)["1"] > 0
    finally:
        (server.extra["model"] / "release").touch()
        server.stop(signal.SIGKILL)


def test_the_busy_ratio_counts_every_frontends_calls(tmp_path: Path) -> None:
    model = {
        "name": "pids",
        "implementation": "models.PidModel",
        "parallel_workers": 2,
        "preload": False,
    }
    server = _start(tmp_path, {"worker_ping_interval": 0}, model)
    try:
        model_folder = server.extra["model"]
        assert _busy(server) == 0.0
        (model_folder / "release").unlink(missing_ok=True)
        started = model_folder / "started"
        executor = concurrent.futures.ThreadPoolExecutor(4)
        with executor:
            futures = [executor.submit(_infer, server, HOLD)]
            _wait(lambda: len(_lines(started)) >= 1, "one worker busy", server)
            assert _busy(server) == 0.5
            futures += [executor.submit(_infer, server, HOLD) for _ in range(3)]
            _wait(lambda: len(set(_lines(started))) >= 2, "both busy", server)
            assert _busy(server) == 1.0, _lines(started)
            (model_folder / "release").touch()
            assert all(_pid(f.result()) for f in futures)
        _wait(lambda: _busy(server) == 0.0, "the workers idle again", server)
    finally:
        (server.extra["model"] / "release").touch()
        server.stop(signal.SIGKILL)
