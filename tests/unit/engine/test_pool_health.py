"""Worker pool under trouble: hung and stopped workers, crash loops, deadlines, caps,
queue bounds and recycling (real spawned processes; judged by events and counters)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlpack.codecs.tensors import validate_inputs
from mlpack.engine import deadlines
from mlpack.engine.workers.pool import WorkerPool, WorkerRunner
from mlpack.errors import NoCapacity, Overloaded, WorkerError
from mlpack.settings import ModelSettings
from mlpack.types import InferenceRequest
from tests.helpers.server import ASSETS
from tests.helpers.workers import CRASH_FLAG, crash_while_flagged

SAFETY = 60  # seconds: a net for a broken build, never an assertion


def request(value: float) -> InferenceRequest:
    inference = InferenceRequest.model_validate(
        {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [value]}]}
    )
    validate_inputs(inference.inputs)
    return inference


def settings(name: str) -> ModelSettings:
    return ModelSettings.resolve(ASSETS / "models" / name / "model-settings.json")


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(SAFETY):
        while not condition():
            await asyncio.sleep(0.02)


async def served(runner: WorkerRunner, value: float = 1.0) -> Any:
    """Predict, retrying while the pool has no capacity (a replacement is starting)."""
    async with asyncio.timeout(SAFETY):
        while True:
            try:
                return await runner.predict(request(value))
            except NoCapacity:
                await asyncio.sleep(0.05)


async def test_a_stopped_worker_is_detected_by_pings_and_replaced() -> None:
    pool = WorkerPool(1, ping_interval=0.2, ping_timeout=1.0)
    await pool.start()
    try:
        echo = WorkerRunner(settings("echo"), pool)
        await echo.load()
        pid = pool.workers[0].process.pid
        os.kill(pid, signal.SIGSTOP)
        await until(lambda: pool.hung == 1)
        await until(lambda: not pool.workers or pool.workers[0].process.pid != pid)
        response = await served(echo, 4.0)
        assert list(response.outputs[0].data) == [4.0]
        assert pool.workers[0].process.pid != pid and pool.restarts == 1
    finally:
        await pool.close()


async def test_a_busy_worker_still_answers_pings() -> None:
    pool = WorkerPool(1, ping_interval=0.05, ping_timeout=0.5)
    await pool.start()
    try:
        slow = WorkerRunner(settings("slow"), pool)
        await slow.load()
        await slow.predict(request(1.5))  # ~30 pings while the model computes
        assert pool.hung == 0 and pool.restarts == 0
    finally:
        await pool.close()


async def test_overrunning_twice_the_deadline_kills_the_worker_and_fails_its_calls_fast() -> None:
    pool = WorkerPool(1, max_in_flight=2, ping_interval=0)
    await pool.start()
    try:
        slow = WorkerRunner(settings("slow"), pool)
        echo = WorkerRunner(settings("echo"), pool)
        await slow.load()
        await echo.load()
        pid = pool.workers[0].process.pid
        token = deadlines.set_deadline(time.monotonic() + 0.3)
        try:
            hung = asyncio.ensure_future(slow.predict(request(600.0)))
        finally:
            deadlines.reset_deadline(token)
        await until(lambda: pool._counts[slow.key] == 1)
        behind = asyncio.ensure_future(echo.predict(request(2.0)))  # same worker, queued
        with pytest.raises(WorkerError, match="exited while serving"):
            await asyncio.wait_for(hung, SAFETY)
        with pytest.raises(WorkerError) as raised:
            await asyncio.wait_for(behind, SAFETY)
        assert raised.value.status == 503
        assert list((await served(echo, 5.0)).outputs[0].data) == [5.0]
        assert pool.workers[0].process.pid != pid
    finally:
        await pool.close()


async def test_crash_looping_replacement_keeps_trying_and_capacity_comes_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flag = tmp_path / "crash"
    monkeypatch.setenv(CRASH_FLAG, str(flag))
    pool = WorkerPool(1, target=crash_while_flagged, ping_interval=0, max_restart_backoff=0.2)
    await pool.start()
    try:
        echo = WorkerRunner(settings("echo"), pool)
        await echo.load()
        flag.touch()
        os.kill(pool.workers[0].process.pid, signal.SIGKILL)
        await until(lambda: pool.failed_starts >= 3)  # more than the old limit of 3 tries
        assert not echo.has_capacity()
        with pytest.raises(NoCapacity) as raised:  # at once, not after a wait
            await echo.predict(request(1.0))
        assert raised.value.retry_after and raised.value.status == 503
        flag.unlink()
        await until(echo.has_capacity)
        assert list((await echo.predict(request(7.0))).outputs[0].data) == [7.0]
    finally:
        await pool.close()


async def test_one_model_cannot_take_every_worker() -> None:
    pool = WorkerPool(2, max_in_flight=2, ping_interval=0)
    await pool.start()
    try:
        slow = WorkerRunner(settings("slow"), pool)
        echo = WorkerRunner(settings("echo"), pool)
        await slow.load()
        await echo.load()
        assert pool.model_cap(slow.key) == 1  # workers, not slots
        stuck = [asyncio.ensure_future(slow.predict(request(600.0))) for _ in range(3)]
        await until(lambda: pool._counts[slow.key] == 2 and len(pool._waiting) == 1)
        assert sum(1 for w in pool.workers if w.key_calls[slow.key]) == 1
        # The stuck model keeps to one worker; the other model still has one.
        assert list(
            (await asyncio.wait_for(echo.predict(request(3.0)), SAFETY)).outputs[0].data
        ) == [3.0]
        assert not any(call.done() for call in stuck)
        for call in stuck:
            call.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)
    finally:
        await pool.close()


async def test_the_wait_queue_is_bounded() -> None:
    pool = WorkerPool(1, max_in_flight=1, max_queue_size=2, ping_interval=0)
    await pool.start()
    try:
        slow = WorkerRunner(settings("slow"), pool)
        await slow.load()
        calls = [asyncio.ensure_future(slow.predict(request(0.5))) for _ in range(3)]
        await until(lambda: len(pool._waiting) == 2)
        with pytest.raises(Overloaded, match="max_queue_size 2"):
            await slow.predict(request(0.0))
        results = await asyncio.wait_for(asyncio.gather(*calls), SAFETY)
        assert len(results) == 3
    finally:
        await pool.close()


async def test_recycling_replaces_workers_without_failing_a_request() -> None:
    pool = WorkerPool(1, max_in_flight=2, max_requests_per_worker=5, ping_interval=0)
    await pool.start()
    try:
        echo = WorkerRunner(settings("echo"), pool)
        await echo.load()
        pids: set[int] = set()

        async def one(i: int) -> float:
            response = await echo.predict(request(float(i)))
            pids.update(w.process.pid for w in pool.workers)
            return float(response.outputs[0].data[0])

        for start in range(0, 24, 4):  # waves of 4 concurrent requests
            values = await asyncio.wait_for(
                asyncio.gather(*(one(i) for i in range(start, start + 4))), SAFETY
            )
            assert values == [float(i) for i in range(start, start + 4)]
        await until(lambda: pool._replacing == 0)
        assert pool.recycled >= 2 and len(pids) >= 3
        assert len(pool.workers) == 1
    finally:
        await pool.close()
