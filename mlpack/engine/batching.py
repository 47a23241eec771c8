"""Adaptive batching: many single requests in, fuller batches to the model.

``AdaptiveBatcher`` is work-conserving. When nothing is running, a request is dispatched
at once: a lone request never waits out a window. Requests that arrive while the model is
busy queue up and leave together as soon as a slot frees, so batches grow with load by
themselves. With several workers (``concurrency``), an idle worker waits at most
``max_batch_time`` for a fuller batch while others compute.

With a pipeline (``pipeline_depth`` above 1, worker processes), each worker may hold more
than one batch: once every worker computes, the next batch is formed, merged, encoded and
sent as soon as it holds as many rows as the batch sent before it (or is full, or its
oldest request waited ``max_batch_time``), and waits in the worker, which starts it the
moment its current batch ends instead of idling while the server answers and sends more.
Sending it sooner would only make it smaller: more batches, each costing the server and
the worker per batch, for the same rows. When a worker frees up, whatever is queued goes
at once. Batch size counts rows (first dimension); a request is never split.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any

from .. import tracing
from ..errors import DeadlineExceeded, Overloaded
from ..settings import ModelSettings
from ..types import InferenceRequest, InferenceResponse, MetadataModelResponse, Parameters
from .deadlines import current_deadline, expired, reset_deadline, set_deadline
from .merging import batch_key, count_rows, merge_requests, split_response
from .runner import ModelRunner, stream_on
from .stats import InferTiming, close_timing, current_timing, open_timing

Predict = Callable[[InferenceRequest], Awaitable[InferenceResponse]]


@dataclass
class ServingInfo:
    """How one request was served (reported when a model's ``serving_info`` is on)."""

    batch_size: int = 0
    batch_requests: int = 1
    queue_wait: float = 0.0

    def attach(self, response: InferenceResponse) -> None:
        """Report as response parameters (transports may also send them as headers)."""
        wait_ms = round(self.queue_wait * 1000, 3)
        parameters = response.parameters or Parameters()
        # Parameters allows extra fields; typed access would not know these names.
        parameters.__setattr__("batch_size", self.batch_size)
        parameters.__setattr__("batch_requests", self.batch_requests)
        parameters.__setattr__("queue_wait_ms", wait_ms)
        response.parameters = parameters


class _Pending:
    __slots__ = (
        "deadline",
        "enqueued",
        "enqueued_ns",
        "future",
        "info",
        "key",
        "request",
        "rows",
        "timing",
        "trace",
    )

    def __init__(
        self,
        request: InferenceRequest,
        key: Hashable,
        rows: int | None,
        future: asyncio.Future[InferenceResponse],
        info: ServingInfo | None,
    ) -> None:
        self.request, self.key, self.rows, self.future, self.info = request, key, rows, future, info
        self.enqueued = time.perf_counter()
        self.timing: InferTiming | None = None
        self.trace: Any = None  # the request's trace context (tracing on only)
        self.enqueued_ns = 0
        self.deadline = current_deadline()


class AdaptiveBatcher:
    """Queues requests for one model and sends them to ``predict`` in batches.

    Parameters:
        predict: runs one (merged) request on the model.
        max_batch_size: most rows in one batch.
        max_batch_time: longest a free slot waits for a fuller batch while others are busy (s).
        max_queue_size: most requests waiting; beyond it ``Overloaded`` (503) is raised.
        concurrency: batches the model can compute at once (worker processes; 1 in-process).
        name: the model's name, for messages.
        pipeline_depth: batches each of those may hold at once: one computing, the others
            queued behind it (a worker's pipeline; 1: none).
    """

    def __init__(
        self,
        predict: Predict,
        max_batch_size: int,
        max_batch_time: float,
        max_queue_size: int,
        concurrency: int = 1,
        name: str = "model",
        pipeline_depth: int = 1,
    ) -> None:
        self._predict = predict
        self.max_batch_size = max(1, max_batch_size)
        self.max_batch_time = max_batch_time
        self.max_queue_size = max_queue_size
        self.concurrency = max(1, concurrency)
        self.pipeline_depth = max(1, pipeline_depth)
        self.name = name
        self._queue: collections.deque[_Pending] = collections.deque()
        self._busy = 0
        self._last_rows = 1  # rows of the batch sent last (what a pipeline slot waits for)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_head: _Pending | None = None  # the queue head the timer waits for
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def predict(
        self, request: InferenceRequest, info: ServingInfo | None = None
    ) -> InferenceResponse:
        """Queue ``request`` and wait for its own part of a batch's response."""
        self._drop_cancelled()
        if len(self._queue) >= self.max_queue_size:
            raise Overloaded(
                f"model '{self.name}': {len(self._queue)} requests are queued "
                f"(max_queue_size {self.max_queue_size}); retry later",
                retry_after=1.0,
            )
        rows = count_rows(request)
        key: Hashable = batch_key(request) if rows is not None else object()
        future: asyncio.Future[InferenceResponse] = asyncio.get_running_loop().create_future()
        pending = _Pending(request, key, rows, future, info)
        pending.timing = current_timing()  # observability: filled in when the batch runs
        if tracing.active:
            pending.trace, pending.enqueued_ns = tracing.current_context(), time.time_ns()
        if pending.timing is not None:
            pending.timing.batch_queue = len(self._queue)
        self._queue.append(pending)
        self._dispatch()
        return await future  # cancelling the caller cancels the future: dropped before compute

    def _drop_cancelled(self) -> None:
        while self._queue and self._queue[0].future.done():
            self._queue.popleft()

    def _dispatch(self) -> None:
        while self._busy < self.concurrency * self.pipeline_depth:
            self._drop_cancelled()
            if not self._queue:
                self._cancel_timer()
                return
            head = self._queue[0]
            if self._busy and head.rows is not None:
                # Others are computing and a worker is idle: a fuller batch may be worth a
                # short wait. With every worker computing, the slot is a pipeline slot: the
                # batch would wait in a worker anyway, so it waits here until it is as big
                # as the last batch sent (or full): sent sooner it would only be smaller,
                # costing more per row in the server and in the worker.
                wanted = self.max_batch_size
                if self._busy >= self.concurrency:
                    wanted = min(wanted, self._last_rows)
                waited = time.perf_counter() - head.enqueued
                if waited < self.max_batch_time and self._rows_for(head.key, wanted) < wanted:
                    if self._timer is None or self._timer_head is not head:
                        # One timer per head: arrivals while it waits do not re-arm it.
                        self._cancel_timer()
                        loop = asyncio.get_running_loop()
                        delay = self.max_batch_time - waited
                        self._timer, self._timer_head = loop.call_later(delay, self._on_timer), head
                    return
            self._cancel_timer()
            batch = self._take_batch()
            self._last_rows = sum(item.rows or 0 for item in batch)
            self._busy += 1
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            # Every caller of a dispatched batch gone: stop it too (a worker skips it
            # if it has not started).
            abandon = functools.partial(_abandon_if_all_gone, batch, task)
            for item in batch:
                item.future.add_done_callback(abandon)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._timer_head = None

    def _on_timer(self) -> None:
        self._timer = self._timer_head = None
        self._dispatch()

    def _rows_for(self, key: Hashable, enough: int) -> int:
        """Rows queued that could join a batch keyed ``key`` (counting stops at ``enough``)."""
        rows = 0
        for item in self._queue:
            if item.key == key and not item.future.done():
                rows += item.rows or 0
                if rows >= enough:
                    break
        return rows

    def _take_batch(self) -> list[_Pending]:
        head = self._queue.popleft()
        batch = [head]
        if head.rows is None:
            return batch
        rows = head.rows
        kept: collections.deque[_Pending] = collections.deque()
        while self._queue:
            item = self._queue.popleft()
            if item.future.done():
                continue
            if (
                item.key == head.key
                and item.rows is not None
                and rows + item.rows <= self.max_batch_size
            ):
                batch.append(item)
                rows += item.rows
                if rows >= self.max_batch_size:
                    break
            else:
                kept.append(item)
        kept.extend(self._queue)
        self._queue = kept
        return batch

    def _still_wanted(self, batch: list[_Pending]) -> list[_Pending]:
        """``batch`` without callers who left; expired ones get 504 and are not started."""
        for item in batch:
            if not item.future.done() and expired(item.deadline):
                item.future.set_exception(
                    DeadlineExceeded(
                        f"model '{self.name}': the request's deadline passed before compute"
                    )
                )
        return [item for item in batch if not item.future.done()]

    async def _run(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        token = None
        try:
            batch = self._still_wanted(batch)
            if not batch:
                return
            token = set_deadline(_batch_deadline(batch))
            rows = [item.rows or 0 for item in batch]
            _record_start(batch, rows, started)
            # The runner reports time the batch spent queued below it (waiting for a worker
            # slot, then in the worker's pipeline) here: it is every member's queue time.
            below, timing_token = open_timing()
            try:
                if tracing.active and batch[0].trace is not None:
                    responses = await self._compute_traced(batch, rows)
                else:
                    responses = await self._compute(batch, rows)
            finally:
                close_timing(timing_token)
            if below.queue_wait:
                _add_queue_wait(batch, below.queue_wait)
            for item, response in zip(batch, responses, strict=False):
                if not item.future.done():
                    item.future.set_result(response)
        except BaseException as error:
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(error)
            if not isinstance(error, Exception):
                raise
        finally:
            if token is not None:
                reset_deadline(token)
            self._busy -= 1
            self._dispatch()

    async def _compute(self, batch: list[_Pending], rows: list[int]) -> list[InferenceResponse]:
        if len(batch) == 1:
            return [await self._predict(batch[0].request)]
        merged = merge_requests([item.request for item in batch])
        response = await self._predict(merged)
        return split_response(response, rows, self.name)

    async def _compute_traced(
        self, batch: list[_Pending], rows: list[int]
    ) -> list[InferenceResponse]:
        """``_compute`` in a ``batch`` span (child of the first request, linked to every
        member); each member gets a ``queue`` span for its wait, linked to the batch."""
        members = [item for item in batch if item.trace is not None]
        attributes = {
            "mlpack.model.name": self.name,
            "mlpack.batch.size": sum(rows),
            "mlpack.batch.requests": len(batch),
        }
        links = [tracing.link(tracing.span_context_of(item.trace)) for item in members]
        with tracing.span("batch", attributes, context=batch[0].trace, links=links) as span:
            now, batch_link = time.time_ns(), [tracing.link(span.get_span_context())]
            for item in members:
                queue = tracing.start_span(
                    "queue",
                    context=item.trace,
                    start_time=item.enqueued_ns,
                    links=batch_link,
                    attributes={"mlpack.model.name": self.name},
                )
                queue.end(end_time=now)
            return await self._compute(batch, rows)

    async def aclose(self) -> None:
        """Wait for running batches to finish."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _record_start(batch: list[_Pending], rows: list[int], started: float) -> None:
    """Tell each member's serving info and timing about its batch and its wait so far."""
    for index, item in enumerate(batch):
        if item.info is not None:
            item.info.batch_size = sum(rows)
            item.info.batch_requests = len(batch)
            item.info.queue_wait = started - item.enqueued
        if item.timing is not None:  # observability: one execution per batch
            item.timing.batch_size = len(batch)
            item.timing.executions = 1 if index == 0 else 0
            item.timing.queue_wait = started - item.enqueued


def _add_queue_wait(batch: list[_Pending], seconds: float) -> None:
    for item in batch:
        if item.info is not None:
            item.info.queue_wait += seconds
        if item.timing is not None:
            item.timing.queue_wait += seconds


def _batch_deadline(batch: list[_Pending]) -> float | None:
    """A batch runs until its last member's deadline (none if any member has none)."""
    deadlines = [item.deadline for item in batch]
    if any(deadline is None for deadline in deadlines):
        return None
    return max(d for d in deadlines if d is not None)


def _abandon_if_all_gone(batch: list[_Pending], task: asyncio.Task[None], _: object = None) -> None:
    if not task.done() and all(item.future.cancelled() for item in batch):
        task.cancel()


class BatchingRunner:
    """A ``ModelRunner`` whose predictions go through an ``AdaptiveBatcher``."""

    queues = True  # requests wait in the batcher's queue before compute

    def __init__(
        self, runner: ModelRunner, max_batch_size: int, max_batch_time: float, max_queue_size: int
    ) -> None:
        self.settings: ModelSettings = runner.settings
        self.runner = runner
        self.batcher = AdaptiveBatcher(
            runner.predict,
            max_batch_size=max_batch_size,
            max_batch_time=max_batch_time,
            max_queue_size=max_queue_size,
            concurrency=getattr(runner, "concurrency", 1),
            name=runner.settings.name,
            pipeline_depth=getattr(runner, "pipeline_depth", 1),
        )

    def has_capacity(self) -> bool:
        check = getattr(self.runner, "has_capacity", None)
        return True if check is None else bool(check())

    async def load(self) -> MetadataModelResponse:
        metadata = await self.runner.load()
        self.batcher.concurrency = max(1, getattr(self.runner, "concurrency", 1))
        self.batcher.pipeline_depth = max(1, getattr(self.runner, "pipeline_depth", 1))
        return metadata

    async def predict(
        self, request: InferenceRequest, info: ServingInfo | None = None
    ) -> InferenceResponse:
        return await self.batcher.predict(request, info)

    def predict_stream(
        self, requests: AsyncIterator[InferenceRequest]
    ) -> AsyncIterator[InferenceResponse]:
        """Streams bypass the batcher: they go straight to the runner behind it."""
        return stream_on(self.runner, requests)

    async def unload(self) -> None:
        await self.batcher.aclose()
        await self.runner.unload()


async def predict_reporting(
    runner: Any, request: InferenceRequest, info: ServingInfo
) -> InferenceResponse:
    """Run ``request`` on ``runner``, filling ``info`` (batch size, queue wait)."""
    if isinstance(runner, BatchingRunner):
        return await runner.predict(request, info)
    info.batch_size = count_rows(request) or 1
    return await runner.predict(request)  # type: ignore[no-any-return]
