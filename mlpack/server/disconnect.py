"""Stop work for a REST client that has gone away (``http.disconnect``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request

from ..errors import RequestCancelled

T = TypeVar("T")


async def _cancel_on_disconnect(
    request: Request, task: asyncio.Task[object], gone: list[bool]
) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            gone.append(True)
            task.cancel()
            return


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``; cancel it (so a queued request is dropped) if the client disconnects.

    ``work`` runs in the calling task (no task of its own): one watcher task cancels the
    caller when the client goes, which costs a request about half of running both apart.
    """
    task = asyncio.current_task()
    if task is None:  # pragma: no cover - always called from a request's task
        return await work
    gone: list[bool] = []
    watcher = asyncio.get_running_loop().create_task(_cancel_on_disconnect(request, task, gone))
    try:
        return await work
    except asyncio.CancelledError:
        if not gone:
            raise
        task.uncancel()
        raise RequestCancelled("client disconnected before the response was ready") from None
    finally:
        watcher.cancel()
