"""Per-model pools and zygote-forked workers, on a real ``mlpack start``.

Every model answers with the pid that ran the request and the pid that loaded it, so the
pid sets prove where each model runs (server process, its own pool, a shared group, its
environment's pool) and that a pool's workers were forked from a zygote that loaded it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.server import ASSETS, RunningServer, checkout_pythonpath, start_server

pytestmark = pytest.mark.e2e

MODEL = ASSETS / "pools" / "heavy" / "models.py"
MiB = 2**20


def add_model(root: Path, name: str, **fields: Any) -> None:
    folder = root / name
    folder.mkdir()
    shutil.copy(MODEL, folder / "models.py")
    settings = {"name": name, "implementation": "models.HeavyModel", **fields}
    (folder / "model-settings.json").write_text(json.dumps(settings))


def infer(url: str, model: str, hold: float = 0.0) -> dict[str, int]:
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [hold]}]}
    response = httpx.post(f"{url}/v2/models/{model}/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return {out["name"]: out["data"][0] for out in response.json()["outputs"]}


def overlapping(url: str, model: str, count: int = 6, hold: float = 0.5) -> list[dict[str, int]]:
    """``count`` requests at once, each held ``hold`` s: a pool of N must spread them."""

    async def run() -> list[dict[str, int]]:
        body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [hold]}]}
        async with httpx.AsyncClient(timeout=30) as client:
            responses = await asyncio.gather(
                *(client.post(f"{url}/v2/models/{model}/infer", json=body) for _ in range(count))
            )
        assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
        return [{o["name"]: o["data"][0] for o in r.json()["outputs"]} for r in responses]

    return asyncio.run(run())


def pool_metric(server: RunningServer, name: str, pool: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics").text
    for line in text.splitlines():
        if line.startswith(f'{name}{{pool="{pool}"}}'):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} for pool {pool} not in the metrics")


def make_environment(path: Path) -> Path:
    """A bare virtualenv of the server's Python (no pip): the server's mlpack is shimmed in."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("pools")
    add_model(root, "light", parallel_workers=0)
    add_model(root, "heavy", parallel_workers=2, parameters={"extra": {"megabytes": 20}})
    add_model(root, "plain")  # the server's parallel_workers: the shared default pool
    add_model(root, "group_a", worker_pool="shared", instance_count=2)
    add_model(root, "group_b", inference_pool_gid="shared")
    add_model(root, "selfload", parallel_workers=2, preload=False)
    environment = make_environment(tmp_path_factory.mktemp("env") / "venv")
    add_model(root, "enved", parallel_workers=2, parameters={"environment_path": str(environment)})
    running = start_server(
        root, tmp_path_factory.mktemp("logs"), args=("--parallel-workers", "1"), timeout=120
    )
    running.extra["environment"] = environment
    yield running
    running.stop()


def test_each_model_runs_where_its_count_says(server: RunningServer) -> None:
    server_pid = server.process.pid
    assert infer(server.url, "light")["pid"] == server_pid  # 0: in the server process
    heavy = overlapping(server.url, "heavy")
    heavy_pids = {r["pid"] for r in heavy}
    assert len(heavy_pids) == 2 and server_pid not in heavy_pids  # its own 2 processes
    # Loaded once, by the zygote the workers were forked from.
    (zygote,) = {r["loaded_in"] for r in heavy}
    assert zygote not in heavy_pids | {server_pid}
    plain = overlapping(server.url, "plain", count=2, hold=0.1)
    (plain_pid,) = {r["pid"] for r in plain}  # the default pool has 1 process
    assert plain_pid not in heavy_pids | {server_pid}
    answers = overlapping(server.url, "enved")
    enved = {r["pid"] for r in answers}
    assert len(enved) == 2 and not enved & (heavy_pids | {server_pid, plain_pid})
    # Its own count, forked from a zygote that runs the environment's Python.
    (enved_zygote,) = {r["loaded_in"] for r in answers}
    assert enved_zygote not in enved | {zygote}
    command = Path(f"/proc/{enved_zygote}/cmdline").read_bytes().split(b"\0")[0].decode()
    assert command == str(server.extra["environment"] / "bin" / "python")


def test_models_naming_one_pool_share_its_processes(server: RunningServer) -> None:
    a = overlapping(server.url, "group_a")
    b = overlapping(server.url, "group_b")
    # One zygote loaded both, and both models' requests run in its forked children...
    (zygote,) = {r["loaded_in"] for r in a + b}
    workers = children(zygote)
    assert len(workers) == 2  # ... of which it has 2: the group's largest count
    assert {r["pid"] for r in a + b} <= workers
    heavy = {r["pid"] for r in overlapping(server.url, "heavy")}
    assert not workers & heavy


def children(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def test_preload_false_workers_load_the_model_themselves(server: RunningServer) -> None:
    answers = overlapping(server.url, "selfload")
    assert len({r["pid"] for r in answers}) == 2
    assert all(r["loaded_in"] == r["pid"] for r in answers)  # no zygote: each loaded it


def test_start_lists_each_pool_with_its_models_and_processes(server: RunningServer) -> None:
    log = server.log()
    assert "pool model:heavy: 2 processes, forked from a zygote: heavy" in log
    assert "pool group:shared: 2 processes, forked from a zygote: group_a, group_b" in log
    assert "pool model:selfload: 2 processes: selfload" in log
    assert "pool default: 1 process: plain" in log
    assert "in the server process: light" in log
    assert "pool env:venv/model:enved: 2 processes, forked from a zygote: enved" in log
    assert "[PSS " in log  # each pool's memory as it starts serving
    assert pool_metric(server, "worker_pool_live_workers", "model:heavy") == 2
    assert pool_metric(server, "worker_pool_live_workers", "group:shared") == 2


def test_a_killed_worker_is_forked_again_from_the_zygote(server: RunningServer) -> None:
    before = overlapping(server.url, "heavy")
    (zygote,) = {r["loaded_in"] for r in before}
    victim = before[0]["pid"]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    pids: set[int] = set()
    while time.monotonic() < deadline:
        try:
            answers = overlapping(server.url, "heavy")
        except AssertionError:  # 503 while the replacement starts
            time.sleep(0.2)
            continue
        pids = {r["pid"] for r in answers}
        if len(pids) == 2:
            assert {r["loaded_in"] for r in answers} == {zygote}  # forked, not loaded again
            break
        time.sleep(0.2)
    assert len(pids) == 2 and victim not in pids


def test_reload_rolls_the_workers_without_a_failed_request(server: RunningServer) -> None:
    old = {r["pid"] for r in overlapping(server.url, "heavy")}

    async def traffic(stop: asyncio.Event, counts: dict[str, int]) -> None:
        body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [0.0]}]}
        async with httpx.AsyncClient(timeout=30) as client:
            while not stop.is_set():
                response = await client.post(f"{server.url}/v2/models/heavy/infer", json=body)
                counts["ok" if response.status_code == 200 else "failed"] += 1

    async def run() -> dict[str, int]:
        counts = {"ok": 0, "failed": 0}
        stop = asyncio.Event()
        clients = [asyncio.create_task(traffic(stop, counts)) for _ in range(4)]
        async with httpx.AsyncClient(timeout=120) as client:
            response = await client.post(f"{server.url}/v2/repository/models/heavy/load")
        assert response.status_code == 200, response.text
        before_stop = counts["ok"]
        while counts["ok"] < before_stop + 20:  # traffic after the swap, too
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*clients)
        return counts

    counts = asyncio.run(run())
    assert counts["failed"] == 0 and counts["ok"] > 20
    new = {r["pid"] for r in overlapping(server.url, "heavy")}
    assert len(new) == 2 and not new & old  # every worker was forked afresh


def test_a_dead_zygote_is_replaced_while_the_workers_keep_serving(server: RunningServer) -> None:
    before = overlapping(server.url, "heavy")
    (zygote,) = {r["loaded_in"] for r in before}
    workers = {r["pid"] for r in before}
    os.kill(zygote, signal.SIGKILL)
    during = overlapping(server.url, "heavy")  # the workers did not go with it
    assert {r["pid"] for r in during} == workers
    # A new zygote loads the model again; a worker that dies now is forked from it.
    deadline = time.monotonic() + 60
    loaded_in: set[int] = set()
    while time.monotonic() < deadline and not loaded_in - {zygote}:
        time.sleep(0.5)
        with contextlib.suppress(AssertionError, ProcessLookupError):
            answers = overlapping(server.url, "heavy")
            loaded_in = {r["loaded_in"] for r in answers}
            old = [r["pid"] for r in answers if r["loaded_in"] == zygote]
            if old:
                os.kill(old[0], signal.SIGKILL)
    new = loaded_in - {zygote}
    assert new and all(Path(f"/proc/{pid}").exists() for pid in new)


def test_unloading_a_pools_last_model_stops_its_processes(server: RunningServer) -> None:
    pids = {r["pid"] for r in overlapping(server.url, "selfload")}
    response = httpx.post(f"{server.url}/v2/repository/models/selfload/unload", timeout=60)
    assert response.status_code == 200, response.text
    with pytest.raises(AssertionError, match="not in the metrics"):
        pool_metric(server, "worker_pool_live_workers", "model:selfload")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
        time.sleep(0.1)
    assert not any(Path(f"/proc/{p}").exists() for p in pids)
    # The other pools are untouched.
    assert pool_metric(server, "worker_pool_live_workers", "model:heavy") == 2


@pytest.mark.parametrize("preload", [True, False], ids=["zygote", "no-zygote"])
def test_zygote_workers_share_the_model_pages(
    preload: bool, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """PSS of a zygote and 3 workers holding a 100 MiB array stays near one copy."""
    root = tmp_path_factory.mktemp("pss")
    add_model(
        root,
        "big",
        parallel_workers=3,
        preload=preload,
        parameters={"extra": {"megabytes": 100}},
    )
    running = start_server(root, tmp_path_factory.mktemp("logs"), timeout=120)
    try:
        assert len({r["pid"] for r in overlapping(running.url, "big")}) == 3
        pss = pool_metric(running, "worker_pool_processes_pss_bytes", "model:big")
    finally:
        running.stop()
    if preload:
        assert pss < 2 * 100 * MiB  # 3 separate copies would be over 300 MiB
    else:
        assert pss > 3 * 100 * MiB  # each worker holds its own copy


def test_plan_prints_processes_models_and_memory_then_exits(tmp_path: Path) -> None:
    add_model(tmp_path, "light", parallel_workers=0)
    add_model(tmp_path, "heavy", parallel_workers=3, parameters={"extra": {"megabytes": 40}})
    add_model(tmp_path, "broken", parallel_workers=1, implementation="models.Missing")
    environment = {**os.environ, "PYTHONPATH": checkout_pythonpath(), "OPENBLAS_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mlpack", "start", str(tmp_path), "--plan", "--http-port", "0"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "pool model:heavy: 3 processes, forked from a zygote: heavy" in out
    assert "in the server process: light" in out
    sizes = {
        line.split()[1].rstrip(":"): line.split()[2]
        for line in out.splitlines()
        if line.strip().startswith("model ")
    }
    assert 40 <= float(sizes["heavy"]) < 60  # measured while loading: the 40 MiB array
    assert "failed to load" in out and "not measured" in out  # broken: said, not hidden
