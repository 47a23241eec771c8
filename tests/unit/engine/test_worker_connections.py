"""A worker's data connections (one per front-end) and a front-end's ``RemotePool``.

Real worker processes from a ``WorkerPool`` with a run folder; the test plays the
front-ends with ``_Worker`` protocols on the workers' sockets (each with call ids from 0,
so the two connections' ids collide on purpose) and with ``RemotePool``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from mlpack.codecs.tensors import validate_inputs
from mlpack.engine.workers.messages import (
    Predict,
    ReportReceived,
    Status,
    Stop,
    UnloadModel,
    WorkerStatus,
    pack_request,
    unpack_response,
)
from mlpack.engine.workers.pool import WorkerPool, WorkerRunner, _Worker
from mlpack.engine.workers.remote import RemotePool
from mlpack.engine.workers.zygote import ForkedProcess
from mlpack.errors import MLPackError, WorkerError
from mlpack.settings import ModelSettings
from mlpack.types import InferenceRequest
from tests.helpers.server import ASSETS

WAIT = 30.0  # a bound for a hung worker, not a criterion


def _request(value: float, hold: str | None = None) -> InferenceRequest:
    request = InferenceRequest.model_validate(
        {
            "inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [value]}],
            "parameters": {"hold": hold} if hold else None,
        }
    )
    validate_inputs(request.inputs)
    return request


@pytest.fixture
def run_folder() -> Iterator[str]:
    folder = tempfile.mkdtemp(prefix="mlpt-")  # short: a Unix socket path has a length limit
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def pool(run_folder: str) -> AsyncIterator[tuple[WorkerPool, dict[str, str]]]:
    shared = WorkerPool(1, ping_interval=0, run_folder=run_folder)
    await shared.start()
    keys = {}
    for name in ("echo", "slow"):
        settings = ModelSettings.resolve(ASSETS / "models" / name / "model-settings.json")
        runner = WorkerRunner(settings, shared)
        await runner.load()
        keys[name] = runner.key
    try:
        yield shared, keys
    finally:
        await shared.close()


async def _connect(path: str, pid: int) -> _Worker:
    worker = _Worker(0, ForkedProcess(pid, frozenset()), lambda w: None, lambda: None)
    await asyncio.get_running_loop().create_unix_connection(lambda: worker, path)
    return worker


async def _status(pool: WorkerPool) -> WorkerStatus:
    (status,) = await pool.status()
    return status


async def _until_connections(pool: WorkerPool, count: int) -> None:
    """Connected is not yet accepted: wait until the worker counts ``count``."""
    async with asyncio.timeout(WAIT):
        while (await _status(pool)).connections != count:
            await asyncio.sleep(0.01)


async def test_two_connections_interleave_and_each_gets_its_own_replies(
    pool: tuple[WorkerPool, dict[str, str]],
) -> None:
    shared, keys = pool
    (info,) = shared.shared_workers()
    assert Path(info.path).parent == Path(shared.run_folder or "")
    assert os.stat(info.path).st_mode & 0o077 == 0  # only this user may connect
    a, b = await _connect(info.path, info.pid), await _connect(info.path, info.pid)
    await _until_connections(shared, 2)

    async def call(connection: _Worker, value: float) -> float:
        packed = await connection.call(Predict(keys["echo"], pack_request(_request(value))))
        return float(unpack_response(packed).outputs[0].data[0])

    async with asyncio.timeout(WAIT):
        # Same call ids on both connections (each counts from 0), sent interleaved.
        values = await asyncio.gather(
            call(a, 1.0), call(b, 2.0), call(a, 3.0), call(b, 4.0), call(a, 5.0)
        )
    assert values == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert (await _status(shared)).answered == 5


async def test_one_connection_closing_does_not_disturb_the_other(
    pool: tuple[WorkerPool, dict[str, str]], run_folder: str
) -> None:
    shared, keys = pool
    (info,) = shared.shared_workers()
    a, b = await _connect(info.path, info.pid), await _connect(info.path, info.pid)
    hold = os.path.join(run_folder, "hold")
    held = asyncio.ensure_future(a.call(Predict(keys["slow"], pack_request(_request(WAIT, hold)))))
    queued = asyncio.ensure_future(b.call(Predict(keys["echo"], pack_request(_request(7.0)))))
    async with asyncio.timeout(WAIT):
        while not os.path.exists(f"{hold}.started"):  # the worker computes a's call
            await asyncio.sleep(0.01)
        assert a.transport is not None
        a.transport.close()  # a front-end goes away while its call computes
        with pytest.raises(WorkerError):
            await held
        await _until_connections(shared, 1)
        Path(hold).touch()
        packed = await queued
    assert unpack_response(packed).outputs[0].data[0] == 7.0
    assert b.alive and shared.workers[0].alive
    assert shared.workers[0].process.pid == info.pid  # the same worker, never restarted


async def test_a_data_connection_cannot_load_unload_or_stop(
    pool: tuple[WorkerPool, dict[str, str]],
) -> None:
    shared, keys = pool
    (info,) = shared.shared_workers()
    a = await _connect(info.path, info.pid)
    async with asyncio.timeout(WAIT):
        for body in (Stop(), UnloadModel(keys["echo"]), ReportReceived(1)):
            with pytest.raises(MLPackError, match="only from the worker's owner"):
                await a.call(body)
        packed = await a.call(Predict(keys["echo"], pack_request(_request(1.0))))
    assert unpack_response(packed).outputs[0].data[0] == 1.0
    assert isinstance(await shared.workers[0].call(Status()), WorkerStatus)


async def test_the_worker_reports_reaching_a_count_of_every_connections_calls(
    pool: tuple[WorkerPool, dict[str, str]],
) -> None:
    shared, keys = pool
    owner = shared.workers[0]
    (info,) = shared.shared_workers()
    a, b = await _connect(info.path, info.pid), await _connect(info.path, info.pid)
    count = (await _status(shared)).received + 3
    report = asyncio.ensure_future(owner.call(ReportReceived(count)))
    async with asyncio.timeout(WAIT):
        for connection in (a, b):
            await connection.call(Predict(keys["echo"], pack_request(_request(1.0))))
        await _status(shared)  # answered after the calls above were counted
        assert not report.done()  # 2 of 3
        await b.call(Predict(keys["echo"], pack_request(_request(2.0))))
        status = await report
    assert status.received == count
    assert owner.in_flight == 0  # a pending report is not a call in flight


async def test_connections_beyond_the_bound_are_closed(run_folder: str) -> None:
    shared = WorkerPool(1, ping_interval=0, run_folder=run_folder, max_data_connections=3)
    await shared.start()
    (info,) = shared.shared_workers()
    bound = 3
    accepted = []
    try:
        for _ in range(bound):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(info.path)
            accepted.append(sock)
        await _until_connections(shared, bound)
        extra = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        extra.connect(info.path)
        extra.settimeout(WAIT)
        assert extra.recv(1) == b""  # closed by the worker at once
        extra.close()
        assert (await _status(shared)).connections == bound
    finally:
        for sock in accepted:
            sock.close()
        await shared.close()


async def test_a_remote_pool_dispatches_and_fails_fast_when_its_worker_dies(
    pool: tuple[WorkerPool, dict[str, str]], run_folder: str
) -> None:
    shared, keys = pool
    remote = RemotePool("default", 1)
    remote.update(shared.size, shared.model_settings(), shared.shared_workers())
    try:
        async with asyncio.timeout(WAIT):
            await remote.wait_ready(keys["echo"])
            response = await remote.predict(keys["echo"], _request(3.0))
            assert response.outputs[0].data[0] == 3.0
            hold = os.path.join(run_folder, "never")
            held = asyncio.ensure_future(remote.predict(keys["slow"], _request(WAIT, hold)))
            while not os.path.exists(f"{hold}.started"):
                await asyncio.sleep(0.01)
            os.kill(shared.shared_workers()[0].pid, signal.SIGKILL)
            with pytest.raises(WorkerError, match="exited while serving"):
                await held  # at once: no wait for a timeout
            # The owner replaces it; announced, the front-end's pool serves again.
            while not shared.shared_workers() or shared.workers[0].models != set(keys.values()):
                await asyncio.sleep(0.01)
            remote.update(shared.size, shared.model_settings(), shared.shared_workers())
            await remote.wait_ready(keys["echo"])
            response = await remote.predict(keys["echo"], _request(4.0))
        assert response.outputs[0].data[0] == 4.0
        assert shared.restarts == 1
    finally:
        await remote.close()


async def test_a_shared_worker_is_recycled_by_front_end_calls_and_let_go_before_it_stops(
    run_folder: str,
) -> None:
    shared = WorkerPool(1, ping_interval=0, max_requests_per_worker=3, run_folder=run_folder)
    await shared.start()
    remote = RemotePool("default", 1)
    try:
        settings = ModelSettings.resolve(ASSETS / "models" / "echo" / "model-settings.json")
        runner = WorkerRunner(settings, shared)
        async with asyncio.timeout(WAIT):
            await runner.load()
            remote.update(shared.size, shared.model_settings(), shared.shared_workers())
            await remote.wait_ready(runner.key)
            (first,) = shared.shared_workers()
            for value in range(4):  # through the front-end's connection only
                await remote.predict(runner.key, _request(float(value)))
            # No pings: the worker itself answers the owner's ``ReportReceived`` at the
            # limit; the owner starts a successor, and waits for this front-end to let the
            # old worker go before it stops it.
            while shared.recycled == 0 or [w.pid for w in shared.shared_workers()] == [first.pid]:
                await asyncio.sleep(0.01)
            remote.update(shared.size, shared.model_settings(), shared.shared_workers())
            await remote.wait_ready(runner.key)
            response = await remote.predict(runner.key, _request(9.0))
            assert response.outputs[0].data[0] == 9.0
            while ForkedProcess(first.pid, frozenset()).is_alive():
                await asyncio.sleep(0.01)  # stopped once its front-end connection closed
        assert [w.pid for w in shared.shared_workers()] != [first.pid]
    finally:
        await remote.close()
        await shared.close()
