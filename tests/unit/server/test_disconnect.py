"""``unless_disconnected``: work runs in the caller's task; a client that leaves cancels it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import Request

from mlpack.errors import RequestCancelled
from mlpack.server.disconnect import unless_disconnected


def request_with(channel: asyncio.Queue[dict[str, Any]]) -> Request:
    scope = {"type": "http", "method": "POST", "path": "/", "headers": []}
    return Request(scope, channel.get)


async def test_work_runs_in_the_calling_task_and_its_result_is_returned() -> None:
    channel: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def work() -> asyncio.Task[Any] | None:
        return asyncio.current_task()

    caller = asyncio.current_task()
    assert await unless_disconnected(request_with(channel), work()) is caller
    await asyncio.sleep(0)  # the cancelled watcher ends on its next step
    assert len(asyncio.all_tasks()) == 1  # the watcher is gone with the call


async def test_a_disconnect_cancels_the_work_and_answers_request_cancelled() -> None:
    channel: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def work() -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # a queued request: never answered
        except asyncio.CancelledError:
            cancelled.set()
            raise

    call = asyncio.create_task(unless_disconnected(request_with(channel), work()))
    await started.wait()
    await channel.put({"type": "http.disconnect"})
    with pytest.raises(RequestCancelled, match="client disconnected"):
        await call
    assert cancelled.is_set() and not call.cancelled()


async def test_a_cancel_from_elsewhere_stays_a_cancel() -> None:
    channel: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    started = asyncio.Event()

    async def work() -> None:
        started.set()
        await asyncio.Event().wait()

    call = asyncio.create_task(unless_disconnected(request_with(channel), work()))
    await started.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == 1  # the watcher went with it
