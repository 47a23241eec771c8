"""Worker pipelines: a worker holds up to ``max_in_flight`` calls (one computing, the rest
queued in it), with and without the batcher in front (real spawned processes; judged by the
worker's own counters and by gates the test opens, never by time)."""

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
from mlpack.engine.batching import BatchingRunner
from mlpack.engine.stats import close_timing, open_timing
from mlpack.engine.workers.pool import WorkerPool, WorkerRunner
from mlpack.errors import DeadlineExceeded, NoCapacity, Overloaded, WorkerError
from mlpack.settings import ModelSettings
from mlpack.types import InferenceRequest, InferenceResponse
from tests.helpers.server import ASSETS

SAFETY = 60  # seconds: a net for a broken build, never an assertion


def request(value: float, rows: int = 1) -> InferenceRequest:
    inference = InferenceRequest.model_validate(
        {"inputs": [{"name": "x", "datatype": "FP64", "shape": [rows], "data": [value] * rows}]}
    )
    validate_inputs(inference.inputs)
    return inference


def gate_settings(gate: Path) -> ModelSettings:
    settings = ModelSettings.resolve(ASSETS / "pipeline" / "gate" / "model-settings.json")
    settings.parameters.extra["gate"] = str(gate)
    return settings


def echo_settings() -> ModelSettings:
    return ModelSettings.resolve(ASSETS / "models" / "echo" / "model-settings.json")


def values(response: InferenceResponse) -> list[float]:
    return [float(v) for v in response.outputs[0].data]


def started(gate: Path) -> list[int]:
    """Row counts of the calls the model has begun, in no particular order."""
    return [int(p.read_text() or 0) for p in gate.glob("started-*")]


async def until(condition: Callable[[], Any]) -> None:
    async with asyncio.timeout(SAFETY):
        while not condition():
            await asyncio.sleep(0.01)


async def until_status(pool: WorkerPool, condition: Callable[[Any], bool]) -> Any:
    """Poll the first worker's own counters until ``condition`` holds; return them."""
    async with asyncio.timeout(SAFETY):
        while True:
            (status,) = await pool.status()
            if condition(status):
                return status
            await asyncio.sleep(0.01)


@pytest.fixture
async def pool_of_one() -> Any:
    pool = WorkerPool(1, max_in_flight=2, ping_interval=0)
    await pool.start()
    try:
        yield pool
    finally:
        await pool.close()


async def test_a_worker_receives_the_next_call_while_one_computes(
    pool_of_one: WorkerPool, tmp_path: Path
) -> None:
    gated = WorkerRunner(gate_settings(tmp_path), pool_of_one)
    await gated.load()
    first = asyncio.ensure_future(gated.predict(request(1.0)))
    await until(lambda: started(tmp_path))
    timing, token = open_timing()  # the second call's queue time is measured here
    try:
        second = asyncio.ensure_future(gated.predict(request(2.0)))
        status = await until_status(pool_of_one, lambda s: s.received >= 2)
        seen_queued = time.monotonic()
        assert status.started == 1  # the first still computes; the second waits in the worker
        (tmp_path / "open").touch()
        opened = time.monotonic()
        assert [values(r) for r in await asyncio.gather(first, second)] == [
            [1.0],
            [2.0],
        ]
    finally:
        close_timing(token)
    # The time the second call spent queued in the worker counts as queue time, not compute:
    # it was queued by ``seen_queued`` and could not start before the gate opened.
    assert timing.queue_wait >= opened - seen_queued
    (status,) = await pool_of_one.status()
    assert (status.received, status.started, status.answered) == (2, 2, 2)


async def test_the_batcher_sends_the_next_batch_while_one_computes(
    pool_of_one: WorkerPool, tmp_path: Path
) -> None:
    runner = BatchingRunner(
        WorkerRunner(gate_settings(tmp_path), pool_of_one),
        max_batch_size=8,
        max_batch_time=SAFETY,  # a window never closes by itself here: only slots decide
        max_queue_size=100,
    )
    await runner.load()
    assert (runner.batcher.concurrency, runner.batcher.pipeline_depth) == (1, 2)
    first = asyncio.ensure_future(runner.predict(request(1.0)))
    await until(lambda: started(tmp_path))
    second = asyncio.ensure_future(runner.predict(request(2.0, rows=2)))
    # The second batch is formed, sent and queued in the worker while the first computes.
    status = await until_status(pool_of_one, lambda s: s.received >= 2)
    assert status.started == 1
    later = [asyncio.ensure_future(runner.predict(request(float(v)))) for v in (3, 4, 5)]
    await until(lambda: runner.batcher.queued == 3)  # both slots taken: these wait here
    (tmp_path / "open").touch()
    results = await asyncio.wait_for(asyncio.gather(first, second, *later), SAFETY)
    assert [values(r) for r in results] == [[1.0], [2.0, 2.0], [3.0], [4.0], [5.0]]
    assert sorted(started(tmp_path)) == [1, 2, 3]  # the three that waited left as one batch
    await runner.unload()


async def test_a_cancelled_batch_queued_in_the_worker_is_not_computed(
    pool_of_one: WorkerPool, tmp_path: Path
) -> None:
    runner = BatchingRunner(
        WorkerRunner(gate_settings(tmp_path), pool_of_one),
        max_batch_size=8,
        max_batch_time=SAFETY,
        max_queue_size=100,
    )
    await runner.load()
    first = asyncio.ensure_future(runner.predict(request(1.0)))
    await until(lambda: started(tmp_path))
    gone = asyncio.ensure_future(runner.predict(request(2.0, rows=3)))
    await until_status(pool_of_one, lambda s: s.received >= 2)
    gone.cancel()  # its caller left while the batch waited in the worker
    with pytest.raises(asyncio.CancelledError):
        await gone
    (tmp_path / "open").touch()
    assert values(await asyncio.wait_for(first, SAFETY)) == [1.0]
    status = await until_status(pool_of_one, lambda s: s.answered == 2)
    assert status.started == 1 and started(tmp_path) == [1]  # answered, never computed
    after = await asyncio.wait_for(runner.predict(request(6.0)), SAFETY)
    assert values(after) == [6.0]
    await runner.unload()


async def test_a_queued_call_past_its_hard_limit_is_not_taken_for_a_hung_worker(
    pool_of_one: WorkerPool, tmp_path: Path
) -> None:
    gated = WorkerRunner(gate_settings(tmp_path), pool_of_one)
    await gated.load()
    pid = pool_of_one.workers[0].process.pid
    computing = asyncio.ensure_future(gated.predict(request(1.0)))  # no deadline
    await until(lambda: started(tmp_path))
    deadline = time.monotonic() + 0.2
    token = deadlines.set_deadline(deadline)
    try:
        queued = asyncio.ensure_future(gated.predict(request(2.0)))
    finally:
        deadlines.reset_deadline(token)
    await until_status(pool_of_one, lambda s: s.received >= 2)
    # Twice its time has passed while it waited behind a call that is allowed to run on.
    hard_limit = deadline + 0.2
    await until(lambda: time.monotonic() > hard_limit + 0.3)
    assert pool_of_one.workers[0].alive and pool_of_one.workers[0].process.pid == pid
    (tmp_path / "open").touch()
    assert values(await asyncio.wait_for(computing, SAFETY)) == [1.0]
    with pytest.raises(DeadlineExceeded, match="before compute"):
        await asyncio.wait_for(queued, SAFETY)
    assert started(tmp_path) == [1] and pool_of_one.workers[0].process.pid == pid


async def test_a_crash_fails_every_call_in_the_pipeline_fast_and_the_pool_recovers(
    tmp_path: Path,
) -> None:
    pool = WorkerPool(1, max_in_flight=3, ping_interval=0)
    await pool.start()
    try:
        gated = WorkerRunner(gate_settings(tmp_path), pool)
        await gated.load()
        calls = [asyncio.ensure_future(gated.predict(request(float(v)))) for v in range(3)]
        # One computes (at the gate), two wait in the worker.
        await until_status(pool, lambda s: s.received == 3 and s.started == 1)
        pid = pool.workers[0].process.pid
        os.kill(pid, signal.SIGKILL)
        results = await asyncio.wait_for(
            asyncio.gather(*calls, return_exceptions=True), SAFETY
        )  # the gate never opened: only the death can have ended them
        for result in results:
            assert isinstance(result, WorkerError) and result.status == 503
            assert "exited while serving" in str(result)
        (tmp_path / "open").touch()
        async with asyncio.timeout(SAFETY):
            while True:
                try:
                    response = await gated.predict(request(7.0))
                    break
                except NoCapacity:
                    await asyncio.sleep(0.05)
        assert values(response) == [7.0]
        assert pool.workers[0].process.pid != pid and pool.restarts == 1
        assert not pool.workers[0].pending and pool.workers[0].in_flight == 0
    finally:
        await pool.close()


async def test_the_model_cap_and_the_wait_queue_bound_hold_with_deep_pipelines(
    tmp_path: Path,
) -> None:
    pool = WorkerPool(2, max_in_flight=3, max_queue_size=3, ping_interval=0)
    await pool.start()
    try:
        gated = WorkerRunner(gate_settings(tmp_path), pool)
        echo = WorkerRunner(echo_settings(), pool)
        await gated.load()
        await echo.load()
        assert pool.model_cap(gated.key) == 1  # two models: one worker kept for the other
        held = [asyncio.ensure_future(gated.predict(request(float(v)))) for v in range(5)]
        await until(lambda: pool._counts[gated.key] == 3 and len(pool._waiting) == 2)
        # The gated model fills one worker's pipeline and no more; the others wait here.
        assert sorted(w.key_calls[gated.key] for w in pool.workers) == [0, 3]
        # The other model still has a worker.
        answer = await asyncio.wait_for(echo.predict(request(3.0)), SAFETY)
        assert values(answer) == [3.0]
        held.append(asyncio.ensure_future(gated.predict(request(5.0))))
        await until(lambda: len(pool._waiting) == 3)
        with pytest.raises(Overloaded, match="max_queue_size 3"):
            await gated.predict(request(9.0))
        (tmp_path / "open").touch()
        results = await asyncio.wait_for(asyncio.gather(*held), SAFETY)
        assert [values(r) for r in results] == [[float(v)] for v in range(6)]
    finally:
        await pool.close()


async def test_the_batch_queue_bound_holds_with_a_pipeline(
    pool_of_one: WorkerPool, tmp_path: Path
) -> None:
    runner = BatchingRunner(
        WorkerRunner(gate_settings(tmp_path), pool_of_one),
        max_batch_size=8,
        max_batch_time=SAFETY,
        max_queue_size=2,
    )
    await runner.load()
    first = asyncio.ensure_future(runner.predict(request(1.0)))
    await until(lambda: started(tmp_path))
    second = asyncio.ensure_future(runner.predict(request(2.0)))
    await until_status(pool_of_one, lambda s: s.received == 2)
    waiting = [asyncio.ensure_future(runner.predict(request(float(v)))) for v in (3, 4)]
    await until(lambda: runner.batcher.queued == 2)
    with pytest.raises(Overloaded, match="max_queue_size 2"):
        await runner.predict(request(5.0))
    (tmp_path / "open").touch()
    results = await asyncio.wait_for(asyncio.gather(first, second, *waiting), SAFETY)
    assert [values(r) for r in results] == [[1.0], [2.0], [3.0], [4.0]]
    await runner.unload()


def test_the_pipeline_depth_is_a_server_setting() -> None:
    from mlpack.server.app import pool_limits
    from mlpack.settings import Settings

    assert pool_limits(Settings()).max_in_flight == 2
    assert pool_limits(Settings(worker_pipeline_depth=5)).max_in_flight == 5
    with pytest.raises(ValueError, match="worker_pipeline_depth"):
        Settings(worker_pipeline_depth=0)
