"""Deadlines: from request parameters (``timeout_parameter``), enforced by ``Expiry``."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from mlpack.engine.deadlines import Expiry, timeout_parameter
from mlpack.errors import InvalidRequest
from mlpack.types import Parameters


def test_the_timeout_parameter_is_microseconds_read_from_parameters_extras() -> None:
    assert timeout_parameter(None) is None
    assert timeout_parameter(Parameters(headers={"a": "b"})) is None
    assert timeout_parameter(Parameters(timeout=0)) is None
    assert timeout_parameter(Parameters(timeout=2_500_000)) == 2.5


@pytest.mark.parametrize("value", [-1, "5", True])
def test_a_bad_timeout_parameter_is_an_invalid_request(value: object) -> None:
    with pytest.raises(InvalidRequest, match="'timeout' must be a non-negative number"):
        timeout_parameter(Parameters(timeout=value))


# ---- Expiry: one timer cancels every watched call still running at its deadline ----------


async def _hold(gate: asyncio.Event) -> str:
    await gate.wait()
    return "done"


async def _watched(expiry: Expiry, deadline: float, gate: asyncio.Event) -> str:
    task = asyncio.current_task()
    assert task is not None
    watch = expiry.watch(task, deadline)
    try:
        return await _hold(gate)
    except asyncio.CancelledError:
        if watch.timed_out():
            return "timed out"
        raise
    finally:
        expiry.unwatch(watch)


async def test_expiry_cancels_only_the_calls_past_their_deadlines() -> None:
    expiry = Expiry()
    gate = asyncio.Event()
    now = time.monotonic()
    late = asyncio.create_task(_watched(expiry, now + 60, gate))
    soon = asyncio.create_task(_watched(expiry, now + 0.05, gate))  # earlier: re-arms
    assert await soon == "timed out"
    assert not late.done() and len(expiry) == 1
    gate.set()
    assert await late == "done"
    assert len(expiry) == 0


async def test_expiry_of_a_past_deadline_cancels_at_the_first_wait() -> None:
    expiry = Expiry()
    assert await _watched(expiry, time.monotonic() - 1, asyncio.Event()) == "timed out"


async def test_a_call_finished_in_time_is_never_cancelled() -> None:
    expiry = Expiry()
    gate = asyncio.Event()
    gate.set()
    assert await _watched(expiry, time.monotonic() + 0.01, gate) == "done"
    await asyncio.sleep(0.03)  # the timer fires with nothing left to cancel
    assert len(expiry) == 0


async def test_a_cancel_that_is_not_the_deadline_stays_a_cancel() -> None:
    expiry = Expiry()
    task = asyncio.create_task(_watched(expiry, time.monotonic() + 60, asyncio.Event()))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(expiry) == 0


async def test_a_deadline_cancel_the_call_swallowed_is_taken_back() -> None:
    expiry = Expiry()
    task = asyncio.current_task()
    assert task is not None
    watch = expiry.watch(task, time.monotonic() + 0.01)
    with contextlib.suppress(asyncio.CancelledError):  # code that carries on may do so
        await asyncio.sleep(10)
    assert task.cancelling() == 1
    expiry.unwatch(watch)
    assert task.cancelling() == 0  # later awaits in this task are not cancelled for it
    await asyncio.sleep(0)


def test_expiry_follows_a_registry_into_the_next_event_loop() -> None:
    expiry = Expiry()
    for _ in range(2):  # the first loop's timer is gone with it; the second arms its own
        result = asyncio.run(_watched(expiry, time.monotonic() + 0.02, asyncio.Event()))
        assert result == "timed out"
