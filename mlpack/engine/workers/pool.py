"""Parent side of the worker processes: spawn, dispatch, replace the dead, stop in order.

Each worker is a ``spawn``-started process joined to the server by one socket pair.
Requests go to the least-busy live worker that has the model, with at most
``max_in_flight`` outstanding per worker (its pipeline depth): one computes, the others
wait in the worker's own queue, so it starts the next the moment one ends instead of
idling while the server answers and sends more. A queued call is not started when its
caller left or its deadline passed, and it is never taken for a hung one. When a worker
dies, the calls it held fail at once with ``WorkerError`` (503); a replacement is started
and every model loaded through the pool is loaded into it again, while the other workers
keep serving.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import multiprocessing
import os
import random
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from typing import Any

from ... import tracing
from ...errors import NoCapacity, Overloaded, WorkerError
from ...settings import ModelSettings
from ...types import InferenceRequest, InferenceResponse, MetadataModelResponse
from ..deadlines import check, current_deadline
from ..stats import current_timing
from .messages import (
    Call,
    Cancel,
    FrameDecoder,
    Listen,
    LoadModel,
    OpenStream,
    Ping,
    Predict,
    Reply,
    ReportReceived,
    Status,
    Stop,
    StreamChunk,
    StreamCredit,
    UnloadModel,
    WorkerInfo,
    WorkerStatus,
    encode_frame,
    pack_request,
    unpack_response,
)
from .streams import PoolStream
from .worker import run_worker

logger = logging.getLogger("mlpack.workers")

WorkerTarget = Callable[..., None]


@dataclass(frozen=True)
class PoolLimits:
    """The robustness knobs of a ``WorkerPool`` (see its parameters), as plain values."""

    max_queue_size: int = 4096
    max_in_flight: int = 2
    ping_interval: float = 5.0
    ping_timeout: float = 10.0
    max_requests_per_worker: int = 0
    max_restart_backoff: float = 30.0
    run_folder: str | None = None
    max_data_connections: int = 64

    def as_kwargs(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_POOL_LIMITS = PoolLimits()
_runner_ids = itertools.count(1)
_pool_ids = itertools.count(1)  # names workers' sockets in a shared run folder
_socket_ids = itertools.count(1)


class _Worker(asyncio.Protocol):
    """One worker process and the parent's end of its socket.

    A call whose caller gave up (client gone, deadline) stays in ``pending`` until the
    worker answers it: the worker is still busy with it, so its slot stays taken, and a
    stuck worker stops receiving new requests instead of piling them up. The worker
    answers calls in the order sent (pings and status queries aside), so the oldest
    pending call is the one it is on; the others are queued there.
    """

    def __init__(
        self,
        worker_id: int,
        process: Any,
        on_lost: Callable[[_Worker], None],
        on_free: Callable[[], None],
        on_call_done: Callable[[str], None] = lambda key: None,
    ) -> None:
        self.worker_id = worker_id
        self.process = process
        self.on_lost = on_lost
        self.on_free = on_free
        self.on_call_done = on_call_done
        self.counts: collections.Counter[str] = collections.Counter()  # the pool's, shared
        self.pending: dict[int, asyncio.Future[Reply]] = {}
        self.reserved = 0  # slots handed to waiting requests that have not called yet
        self.models: set[str] = set()
        self.keys: dict[int, str] = {}  # call id -> model key, for predictions in flight
        self.key_calls: collections.Counter[str] = collections.Counter()  # by model, + reserved
        self.deadlines: dict[int, float] = {}  # call id -> deadline, for those that have one
        self.timers: dict[int, asyncio.TimerHandle] = {}  # hard limits (kill past them)
        self.pings: set[int] = set()  # pings and status queries (not counted as in flight)
        self.served = 0  # predictions (and streams) sent to this worker
        self.streams: dict[int, PoolStream] = {}  # open streams (they hold the worker)
        self.retiring = False  # recycled: takes no new requests, stops once idle
        self.jitter: int | None = None  # added to max_requests_per_worker (``_limit``)
        self.held = 0  # predictions the worker holds, front-ends' too (last status; shared)
        self.path = ""  # the Unix socket front-ends connect to (shared pools only)
        self.connections = 0  # front-ends connected to it, as of its last status
        self.alive = False
        self.transport: asyncio.Transport | None = None
        self._decoder = FrameDecoder()
        self._ids = itertools.count()

    @property
    def in_flight(self) -> int:
        return len(self.pending) - len(self.pings) + self.reserved

    async def answered_all(self) -> None:
        """Wait until every call sent to it is answered (pings aside), or it dies."""
        while self.alive and len(self.pending) > len(self.pings):
            await asyncio.sleep(0.05)

    def computing(self) -> int | None:
        """The id of the call the worker is on (None: idle)."""
        for call_id in self.pending:
            if call_id not in self.pings:
                return call_id
        return None

    def overdue(self, now: float) -> bool:
        """Whether the call it is on is past its deadline (so it may be stuck); calls queued
        behind it are skipped by the worker once their deadline has passed."""
        computing = self.computing() if self.deadlines else None
        deadline = None if computing is None else self.deadlines.get(computing)
        return deadline is not None and deadline <= now

    def _finished(self, call_id: int) -> None:
        key = self.keys.pop(call_id, None)
        if key is not None:
            self.counts[key] -= 1
            self.key_calls[key] -= 1
        self.deadlines.pop(call_id, None)
        timer = self.timers.pop(call_id, None)
        if timer is not None:
            timer.cancel()
        if key is not None:
            self.on_call_done(key)

    def describe(self) -> str:
        return f"worker {self.worker_id} (pid {self.process.pid})"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.alive = True

    def data_received(self, data: bytes) -> None:
        for reply in self._decoder.feed(data):
            if not isinstance(reply, Reply):
                if self.streams:
                    self._stream_message(reply)
                continue
            future = self.pending.pop(reply.call_id, None)
            if future is None:
                continue
            if self.streams:
                stream = self.streams.pop(reply.call_id, None)
                if stream is not None:
                    stream.end()  # the reply (future) says how it ended
            self._finished(reply.call_id)
            if reply.call_id in self.pings:
                self.pings.discard(reply.call_id)
            elif future.done():  # its caller gave up: the slot it held is free only now
                self.on_free()
                continue
            if future.done():
                continue
            if reply.error is not None:
                future.set_exception(reply.error)
            else:
                future.set_result(reply)

    def _stream_message(self, message: Any) -> None:
        if type(message) is StreamChunk:
            stream = self.streams.get(message.call_id)
            if stream is not None:
                stream.on_chunk(message.response)
        elif type(message) is StreamCredit:
            stream = self.streams.get(message.call_id)
            if stream is not None:
                stream.on_credit(message.count)

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        pending, self.pending = self.pending, {}
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            stream.end()  # its future fails below
        for call_id in list(self.keys):
            self._finished(call_id)
        for future in pending.values():
            if not future.done():
                future.set_exception(
                    WorkerError(f"{self.describe()} exited while serving this request; retry it")
                )
        self.on_lost(self)

    async def call(self, body: Any, hard_limit: float | None = None) -> Any:
        """Send ``body`` and await the value the worker answers (see ``exchange``)."""
        return (await self.exchange(body, hard_limit)).value

    async def exchange(self, body: Any, hard_limit: float | None = None) -> Reply:
        """Send ``body`` and await the worker's reply. Past ``hard_limit`` (monotonic time)
        with the call started and unanswered, the worker is killed (its calls fail with 503)."""
        if not self.alive or self.transport is None:
            raise WorkerError(f"{self.describe()} is not running")
        call_id = next(self._ids)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Reply] = loop.create_future()
        self.pending[call_id] = future
        if isinstance(body, Predict):
            self.keys[call_id] = body.key
            self.counts[body.key] += 1
            self.key_calls[body.key] += 1
            if body.deadline is not None:
                self.deadlines[call_id] = body.deadline
            if hard_limit is not None:
                delay = max(0.0, hard_limit - time.monotonic())
                self.timers[call_id] = loop.call_later(delay, self._overran, call_id, delay)
        elif isinstance(body, (Ping, Status, ReportReceived)):
            self.pings.add(call_id)
        self.transport.writelines(encode_frame(Call(call_id, body)))
        try:
            return await future  # cancelled: the entry stays until the worker's reply
        except asyncio.CancelledError:
            if isinstance(body, Predict) and call_id in self.pending and self.alive:
                # Not started yet? Then the worker skips it (and answers at once).
                self.transport.writelines(encode_frame(Call(next(self._ids), Cancel(call_id))))
            raise

    def send(self, message: Any) -> None:
        """Write one message that expects no reply (stream inputs, credit, cancels)."""
        if self.alive and self.transport is not None:
            self.transport.writelines(encode_frame(message))

    def open_stream(self, body: OpenStream) -> tuple[int, asyncio.Future[Any], PoolStream]:
        """Start a stream: its call id, the future its ``Reply`` settles, and its channel.

        The stream holds a slot (and counts for its model) until the worker's reply, like a
        prediction; while it is open the worker is given nothing else (``WorkerPool._pick``).
        """
        if not self.alive or self.transport is None:
            raise WorkerError(f"{self.describe()} is not running")
        call_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[call_id] = future
        self.keys[call_id] = body.key
        self.counts[body.key] += 1
        self.key_calls[body.key] += 1
        stream = self.streams[call_id] = PoolStream(call_id, body.window, self.send)
        self.transport.writelines(encode_frame(Call(call_id, body)))
        return call_id, future, stream

    def _overran(self, call_id: int, grace: float) -> None:
        if call_id not in self.pending or not self.alive:
            return
        if self.computing() != call_id:
            # Queued behind another call: not started, so not hung (the worker skips it,
            # its deadline being past). Look again later, in case it has just started.
            grace = max(grace, 0.1)
            loop = asyncio.get_running_loop()
            self.timers[call_id] = loop.call_later(grace, self._overran, call_id, grace)
            return
        logger.error(
            "%s: a request ran past twice its deadline; killing the worker "
            "(its other in-flight requests fail with 503) and starting a replacement",
            self.describe(),
        )
        self.kill()

    def kill(self) -> None:
        """Kill the process now; ``connection_lost`` then fails its calls and replaces it."""
        with contextlib.suppress(Exception):
            self.process.kill()
        if self.transport is not None:
            self.transport.close()


class WorkerPool:
    """N worker processes shared by every model that runs in workers.

    Parameters:
        size: number of worker processes.
        stop_timeout: how long ``close`` waits for workers to exit before killing them.
        max_in_flight: most calls one worker holds at once, its pipeline depth: one
            computes, the others wait in the worker so it never idles between them.
        start_timeout: how long a new worker may take to answer its first ping, and
            longest a request waits for a free slot.
        target: the child's entry function (``run_worker``; tests pass their own).
        start_process: starts a worker some other way, given the child's socket and the
            worker id, returning a process-like handle (pid, exitcode, is_alive, join, kill);
            per-model environments use it to start workers with their own Python.
        max_queue_size: most requests waiting for a slot (beyond: ``Overloaded``, 503).
        ping_interval: seconds between health pings to each worker (0: no pings).
        ping_timeout: a worker that does not answer a ping this long is killed and replaced.
        max_requests_per_worker: a worker is replaced after this many predictions, plus
            up to 10% jitter so workers do not restart together (0: never).
        max_restart_backoff: longest wait between attempts to start a replacement; the
            wait doubles from 0.5 s after each failure, and attempts never stop.
        run_folder: a private folder (0700) where each worker also listens for front-ends'
            data connections (``Listen``); None: the pool's own socket only. ``on_change``
            is then told of each change to the worker set (``shared_workers``).
        max_data_connections: most data connections one worker accepts at once.
    """

    def __init__(
        self,
        size: int,
        stop_timeout: float = 5.0,
        max_in_flight: int = 2,
        start_timeout: float = 60.0,
        target: WorkerTarget = run_worker,
        start_process: Callable[[socket.socket, int], Any] | None = None,
        max_queue_size: int = 4096,
        ping_interval: float = 5.0,
        ping_timeout: float = 10.0,
        max_requests_per_worker: int = 0,
        max_restart_backoff: float = 30.0,
        run_folder: str | None = None,
        max_data_connections: int = 64,
    ) -> None:
        self.max_data_connections = max_data_connections
        self.size = size
        self.run_folder = run_folder
        self.on_change: Callable[[], None] | None = None
        self._pool_id = next(_pool_ids)
        self.stop_timeout = stop_timeout
        self.max_in_flight = max_in_flight
        self.start_timeout = start_timeout
        self.max_queue_size = max_queue_size
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_requests_per_worker = max_requests_per_worker
        self.max_restart_backoff = max_restart_backoff
        self._target = target
        self._start_process = start_process
        self._context = multiprocessing.get_context("spawn")
        self._workers: dict[int, _Worker] = {}
        self._ids = itertools.count(size)  # ids for recycled workers' successors
        self._models: dict[str, ModelSettings] = {}
        # Requests waiting for a free slot, oldest first; a freed slot goes to the oldest
        # waiter whose model it can serve (no thundering herd, no overtaking).
        self._waiting: collections.deque[tuple[str, asyncio.Future[_Worker]]] = collections.deque()
        self._counts: collections.Counter[str] = collections.Counter()  # predictions in flight
        self._reserved: collections.Counter[str] = collections.Counter()  # slots handed over
        self._stopping = False
        self._replacing = 0  # replacements (or recycled successors) being started
        self._tasks: set[asyncio.Task[Any]] = set()
        # Figures for metrics and logs.
        self.restarts = 0  # workers started to replace one that died, hung or was recycled
        self.failed_starts = 0
        self.hung = 0  # workers killed for not answering a ping
        self.recycled = 0

    @property
    def workers(self) -> list[_Worker]:
        return list(self._workers.values())

    def model_keys(self) -> list[str]:
        """The runner keys of the models loaded through the pool."""
        return list(self._models)

    def waiting_keys(self) -> list[str]:
        """The model key of each request waiting for a free slot (for gauges)."""
        return [key for key, _ in self._waiting]

    async def start(self) -> None:
        """Start every worker and wait until each answers; then ping them periodically."""
        await asyncio.gather(*(self._spawn(worker_id) for worker_id in range(self.size)))
        if self.ping_interval > 0:
            self._background(self._watch())

    def _background(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _spawn(self, worker_id: int) -> _Worker:
        parent_end, child_end = socket.socketpair()
        try:
            process = await self._start_worker_process(child_end, worker_id)
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()
        worker = _Worker(worker_id, process, self._on_lost, self._hand_over, self._call_done)
        worker.counts = self._counts
        loop = asyncio.get_running_loop()
        await loop.connect_accepted_socket(lambda: worker, parent_end)
        try:
            async with asyncio.timeout(self.start_timeout):
                await worker.call(Ping())
                if self.run_folder is not None:
                    name = f"p{self._pool_id}w{worker_id}-{next(_socket_ids)}.sock"
                    path = os.path.join(self.run_folder, name)  # a replacement's is new
                    listen = Listen(path, self.max_data_connections)
                    worker.path = await worker.call(listen)
                preloaded: frozenset[str] = getattr(process, "preloaded", frozenset())
                for key, settings in list(self._models.items()):
                    if key not in preloaded:
                        await worker.call(LoadModel(key, settings))
                    worker.models.add(key)
        except BaseException:
            self._kill(worker)
            raise
        self._workers[worker_id] = worker
        if self.run_folder is not None and self.max_requests_per_worker:
            self._background(self._await_limit(worker))
        self._changed()
        await self._notify()
        logger.info("%s started", worker.describe())
        return worker

    async def _start_worker_process(self, child_end: socket.socket, worker_id: int) -> Any:
        """Start one worker process on ``child_end``; a process-like handle."""
        if self._start_process is not None:
            return self._start_process(child_end, worker_id)
        process = self._context.Process(
            target=self._target,
            args=(child_end, worker_id),
            name=f"mlpack-worker-{worker_id}",
            daemon=True,
        )
        process.start()
        return process

    def _on_lost(self, worker: _Worker) -> None:
        loop = asyncio.get_running_loop()
        loop.run_in_executor(None, worker.process.join, 5)
        if self._workers.get(worker.worker_id) is not worker:
            return  # never started, already replaced, or recycled
        del self._workers[worker.worker_id]
        self._changed()
        if self._stopping:
            return
        logger.error(
            "%s died (exit code %s); starting a replacement",
            worker.describe(),
            worker.process.exitcode,
        )
        self._fail_waiters_without_capacity()
        self._replacing += 1
        self._background(self._replace(worker.worker_id))

    async def _replace(self, worker_id: int) -> None:
        """Start a replacement until one starts: never give up, back off exponentially."""
        delay = 0.5
        try:
            while not self._stopping:
                try:
                    await self._spawn(worker_id)
                    self.restarts += 1
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    self.failed_starts += 1
                    logger.error(
                        "starting a replacement for worker %d failed (%s); models without a "
                        "live worker are not ready; next attempt in %.1fs",
                        worker_id,
                        error,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.max_restart_backoff)
        finally:
            self._replacing -= 1

    async def _watch(self) -> None:
        """Ping every worker each ``ping_interval``; kill those that do not answer in time."""
        while not self._stopping:
            await asyncio.sleep(self.ping_interval)
            workers = [w for w in self._workers.values() if w.alive]
            results = await asyncio.gather(
                *(self._ping(w) for w in workers), return_exceptions=True
            )
            for worker, answered in zip(workers, results, strict=True):
                if answered is False and worker.alive and not self._stopping:
                    self.hung += 1
                    logger.error(
                        "%s did not answer a ping within %gs; killing it and starting a "
                        "replacement",
                        worker.describe(),
                        self.ping_timeout,
                    )
                    worker.kill()

    async def _ping(self, worker: _Worker) -> bool:
        try:
            async with asyncio.timeout(self.ping_timeout):
                if self.run_folder is None:
                    await worker.call(Ping())
                else:  # shared: front-ends' calls count towards recycling too
                    self._noted(worker, await worker.call(Status()))
        except TimeoutError:
            return False
        except WorkerError:
            pass  # died meanwhile: connection_lost handles it
        return True

    def _noted(self, worker: _Worker, status: WorkerStatus) -> None:
        """Keep what a shared worker reported (every front-end's calls included)."""
        worker.served = max(worker.served, status.received)
        worker.held = status.received - status.answered
        worker.connections = status.connections
        self._maybe_recycle(worker)

    async def refresh_status(self, timeout: float) -> None:
        """Shared pool: ask each live worker its status now (its reader thread answers at
        once, even mid-computation); one that does not answer within ``timeout`` keeps its
        last status. For scrape-time gauges (busy share across front-ends)."""

        async def one(worker: _Worker) -> None:
            with contextlib.suppress(TimeoutError, WorkerError):
                async with asyncio.timeout(timeout):
                    self._noted(worker, await worker.call(Status()))

        if self.run_folder is not None:
            await asyncio.gather(*(one(w) for w in self._workers.values() if w.alive))

    async def _notify(self) -> None:
        self._hand_over()

    def _changed(self) -> None:
        """Tell the owner's listener the worker set (or a worker's models) changed."""
        if self.on_change is not None:
            self.on_change()

    def shared_workers(self) -> list[WorkerInfo]:
        """The live, not retiring workers front-ends may call (shared pools)."""
        return [
            WorkerInfo(w.worker_id, w.process.pid, w.path, frozenset(w.models))
            for w in self._workers.values()
            if w.alive and not w.retiring and w.path
        ]

    def model_settings(self) -> dict[str, ModelSettings]:
        """The settings of each model loaded through the pool, by key."""
        return dict(self._models)

    def _call_done(self, key: str) -> None:
        self._hand_over()  # a model under its cap may take a waiting slot now

    def _has_free_slot(self) -> bool:
        return any(
            w.alive and not w.retiring and w.in_flight < self.max_in_flight and not w.streams
            for w in self._workers.values()
        )

    def _hand_over(self) -> None:
        """Give free slots to waiting requests, oldest first.

        Runs after every reply, so it stops as soon as no slot is left and asks about each
        model once per pass: with many waiters it would otherwise scan them all each time.
        """
        if not self._waiting or not self._has_free_slot():
            return
        still_waiting: collections.deque[tuple[str, asyncio.Future[_Worker]]] = collections.deque()
        unservable: set[str] = set()  # models no free slot can take in this pass
        while self._waiting:
            key, future = self._waiting.popleft()
            if future.done():
                continue
            worker = None if key in unservable else self._pick(key)
            if worker is None:
                unservable.add(key)
                still_waiting.append((key, future))
                continue
            worker.reserved += 1
            worker.key_calls[key] += 1
            self._reserved[key] += 1
            future.set_result(worker)
            if not self._has_free_slot():
                break
        still_waiting.extend(self._waiting)
        self._waiting = still_waiting

    # -- capacity ---------------------------------------------------------------------
    def has_capacity(self, key: str) -> bool:
        """Whether a live worker has ``key`` loaded (or one is being recycled in)."""
        return any(w.alive and key in w.models for w in self._workers.values())

    def _fail_waiters_without_capacity(self) -> None:
        for key, future in self._waiting:
            if not future.done() and not self.has_capacity(key):
                future.set_exception(self._no_capacity(key))

    def _no_capacity(self, key: str) -> NoCapacity:
        name = key.rsplit("#", 1)[0]
        return NoCapacity(
            f"model '{name}': no worker process is running it right now "
            "(a replacement is starting); retry shortly",
            retry_after=1.0,
        )

    def model_cap(self, key: str) -> int:
        """Most workers one model may keep busy at once: with several models in the pool,
        one worker is kept for the others, so a stuck model cannot take every worker (a
        worker computes one request at a time, so the cap counts workers, not slots)."""
        workers = len(self._workers)
        if len(self._models) <= 1 or workers <= 1:
            return max(1, workers)
        return workers - 1

    # -- models -----------------------------------------------------------------------
    async def load(self, key: str, settings: ModelSettings) -> MetadataModelResponse:
        """Load a model into every worker; returns the metadata the first one reports."""
        workers = self.workers
        if not workers:
            raise WorkerError("no worker process is running")
        results = await asyncio.gather(
            *(w.call(LoadModel(key, settings)) for w in workers), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await asyncio.gather(
                *(w.call(UnloadModel(key)) for w in workers if w.alive), return_exceptions=True
            )
            raise errors[0]
        self._models[key] = settings
        for worker in workers:
            worker.models.add(key)
        self._changed()
        await self._notify()
        metadata: MetadataModelResponse = results[0]  # type: ignore[assignment]
        return metadata

    async def unload(self, key: str) -> None:
        self._models.pop(key, None)
        workers = [w for w in self.workers if key in w.models]
        for worker in workers:
            worker.models.discard(key)
        self._changed()
        await asyncio.gather(
            *(w.call(UnloadModel(key)) for w in workers if w.alive), return_exceptions=True
        )

    # -- inference --------------------------------------------------------------------
    def _pick(self, key: str) -> _Worker | None:
        occupied = sum(1 for w in self._workers.values() if w.key_calls[key] > 0)
        at_cap = occupied >= self.model_cap(key)
        best: _Worker | None = None
        now = 0.0
        for worker in self._workers.values():
            if worker.alive and key in worker.models and worker.in_flight < self.max_in_flight:
                if worker.retiring or (at_cap and not worker.key_calls[key]):
                    continue
                if worker.streams:  # its process is busy with a stream until it ends
                    continue
                if worker.deadlines:  # busy past a deadline: maybe stuck, send nothing more
                    now = now or time.monotonic()
                    if worker.overdue(now):
                        continue
                if best is None or worker.in_flight < best.in_flight:
                    best = worker
        return best

    async def predict(self, key: str, request: InferenceRequest) -> InferenceResponse:
        if not self.has_capacity(key):
            if key not in self._models:
                name = key.rsplit("#", 1)[0]
                raise WorkerError(f"model '{name}' is not loaded in any worker")
            raise self._no_capacity(key)
        deadline = current_deadline()
        arrived = time.monotonic()
        worker = None if self._waiting else self._pick(key)  # never overtake a waiter
        reserved = worker is None
        if worker is None:
            if len(self._waiting) >= self.max_queue_size:
                raise Overloaded(
                    f"model '{key.rsplit('#', 1)[0]}': {len(self._waiting)} requests wait for "
                    f"a worker (max_queue_size {self.max_queue_size}); retry later",
                    retry_after=1.0,
                )
            worker = await self._wait_for_worker(key)
        try:
            if reserved:
                worker.reserved -= 1  # the call below holds the slot from here on
                worker.key_calls[key] -= 1
                self._reserved[key] -= 1
            check(deadline, key.rsplit("#", 1)[0])  # expired while waiting: not sent
            hard_limit = None
            sent = time.monotonic()
            if deadline is not None:
                hard_limit = deadline + (deadline - sent)  # twice the time left
            worker.served += 1
            body = Predict(key, pack_request(request), deadline)
            if tracing.active:
                attributes = {"mlpack.worker.id": worker.worker_id}
                with tracing.span("worker", attributes, kind=tracing.client_kind()):
                    body.trace = tracing.inject()  # the worker's spans are children of this one
                    reply = await worker.exchange(body, hard_limit)
            else:
                reply = await worker.exchange(body, hard_limit)
        finally:
            self._hand_over()
            self._maybe_recycle(worker)
        timing = current_timing()
        if timing is not None:  # queued: for a free slot here, then in the worker's pipeline
            in_worker = 0.0 if reply.started is None else max(0.0, reply.started - sent)
            timing.queue_wait += sent - arrived + in_worker
        return unpack_response(reply.value)

    async def status(self) -> list[WorkerStatus]:
        """Each live worker's own counts (received, started, answered), asked of its reader
        thread, so a worker busy computing answers at once."""
        workers = [w for w in self._workers.values() if w.alive]
        return list(await asyncio.gather(*(w.call(Status()) for w in workers)))

    def stream(
        self, key: str, requests: AsyncIterator[InferenceRequest], deadline: float | None = None
    ) -> AsyncIterator[InferenceResponse]:
        """Stream ``requests`` through the ``predict_stream`` of the model under ``key`` in
        one worker; yield its responses as the worker sends them (``workers.streams``).

        The stream waits for a worker like a prediction (``max_queue_size``,
        ``start_timeout``) and then holds that worker until it ends: nothing else is sent
        to it meanwhile, and recycling waits for it. Closing the returned iterator cancels
        the model's generator in the worker; a worker that dies ends the stream with
        ``WorkerError`` (503).
        """
        return self._stream(key, requests, deadline)

    async def _stream(
        self, key: str, requests: AsyncIterator[InferenceRequest], deadline: float | None
    ) -> AsyncIterator[InferenceResponse]:
        worker = await self._acquire(key, deadline)
        settings = self._models.get(key)
        window = settings.max_stream_buffer if settings is not None else 8
        trace = tracing.inject() if tracing.active else None
        worker.served += 1
        call_id, done, channel = worker.open_stream(OpenStream(key, window, deadline, trace))
        feeder = asyncio.ensure_future(channel.forward(requests))
        try:
            while True:
                packed = await channel.next()
                if packed is None:
                    break
                yield unpack_response(packed)
                channel.taken()
            await done  # the worker's reply: None, or the error that ended the stream
        finally:
            feeder.cancel()
            if not done.done():  # the consumer left early: stop the model's generator
                done.cancel()  # the slot stays taken until the worker answers
                if call_id in worker.pending:
                    worker.send(Call(next(worker._ids), Cancel(call_id)))
            elif not done.cancelled():
                done.exception()  # retrieved (the error, if any, was raised above)
            self._hand_over()
            self._maybe_recycle(worker)

    async def _acquire(self, key: str, deadline: float | None) -> _Worker:
        """A worker with a slot for one more call for ``key`` (waiting for one if needed)."""
        name = key.rsplit("#", 1)[0]
        if not self.has_capacity(key):
            if key not in self._models:
                raise WorkerError(f"model '{name}' is not loaded in any worker")
            raise self._no_capacity(key)
        worker = None if self._waiting else self._pick(key)  # never overtake a waiter
        if worker is None:
            if len(self._waiting) >= self.max_queue_size:
                raise Overloaded(
                    f"model '{name}': {len(self._waiting)} requests wait for a worker "
                    f"(max_queue_size {self.max_queue_size}); retry later",
                    retry_after=1.0,
                )
            worker = await self._wait_for_worker(key)
            worker.reserved -= 1  # the caller's call holds the slot from here on
            worker.key_calls[key] -= 1
            self._reserved[key] -= 1
        try:
            check(deadline, name)  # expired while waiting: not sent
        except BaseException:
            self._hand_over()
            raise
        return worker

    async def _wait_for_worker(self, key: str) -> _Worker:
        """Wait (no longer than ``start_timeout``) until a worker with ``key`` has a slot for us.

        The returned worker has one slot reserved for this request.
        """
        if key not in self._models:
            raise WorkerError(f"model '{key.rsplit('#', 1)[0]}' is not loaded in any worker")
        future: asyncio.Future[_Worker] = asyncio.get_running_loop().create_future()
        self._waiting.append((key, future))
        self._hand_over()
        try:
            async with asyncio.timeout(self.start_timeout):
                return await future
        except (TimeoutError, asyncio.CancelledError) as error:
            if future.done() and not future.cancelled() and future.exception() is None:
                worker = future.result()  # handed over just as we gave up: give it back
                worker.reserved -= 1
                worker.key_calls[key] -= 1
                self._reserved[key] -= 1
                self._hand_over()
            else:
                future.cancel()
            if isinstance(error, asyncio.CancelledError):
                raise
            name = key.rsplit("#", 1)[0]
            if key not in self._models:
                raise WorkerError(f"model '{name}' is not loaded in any worker") from None
            raise WorkerError(
                f"no worker could take a request for model '{name}' within {self.start_timeout:g}s"
            ) from None

    # -- recycling ----------------------------------------------------------------------
    def _limit(self, worker: _Worker) -> int:
        """Predictions after which ``worker`` is recycled: the limit plus up to 10 % (drawn
        once per worker), so workers started together are not all recycled at once."""
        limit = self.max_requests_per_worker
        if worker.jitter is None:
            worker.jitter = random.randint(0, max(0, limit // 10))
        return limit + worker.jitter

    async def _await_limit(self, worker: _Worker) -> None:
        """Shared pool: the worker answers once it has received its limit of predictions
        over every connection (front-ends' included), then it is recycled; no pings needed."""
        with contextlib.suppress(WorkerError):  # it died or stopped first
            status: WorkerStatus = await worker.call(ReportReceived(self._limit(worker)))
            worker.served = max(worker.served, status.received)
            self._maybe_recycle(worker)

    def _maybe_recycle(self, worker: _Worker) -> None:
        limit = self.max_requests_per_worker
        if not limit or worker.retiring or self._stopping or not worker.alive:
            return
        if worker.served >= self._limit(worker):
            worker.retiring = True
            self._replacing += 1
            self._background(self._recycle(worker))

    async def _recycle(self, old: _Worker) -> None:
        """Start a successor first, then stop ``old`` once its calls are answered."""
        try:
            await self._replace(next(self._ids))  # counts in _replacing until it starts
        except asyncio.CancelledError:
            return
        self._replacing += 1  # balanced below
        try:
            if self._workers.get(old.worker_id) is old:
                del self._workers[old.worker_id]  # from here on it is no longer replaced
            self._changed()
            self.recycled += 1
            logger.info("%s recycled after %d requests", old.describe(), old.served)
            await self._retire(old)
        finally:
            self._replacing -= 1

    async def _retire(self, old: _Worker) -> None:
        """Stop ``old`` (no longer given calls) once the calls it holds are answered: its
        owner's, and in a shared pool those of front-ends, which close their connection to
        a worker that left the set once their own calls on it are answered (after that,
        they get ``stop_timeout`` to let go)."""
        await old.answered_all()
        if self.run_folder is not None:
            idle_since: float | None = None
            while old.alive:
                try:
                    async with asyncio.timeout(self.ping_timeout):
                        status: WorkerStatus = await old.call(Status())
                except (TimeoutError, WorkerError):
                    break
                if not status.connections:
                    break
                now = time.monotonic()
                if status.received > status.answered:
                    idle_since = None
                elif idle_since is None:
                    idle_since = now
                elif now - idle_since > self.stop_timeout:
                    break
                await asyncio.sleep(0.05)
        if old.alive:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.stop_timeout):
                    await old.call(Stop())
        self._kill(old)

    # -- stop ----------------------------------------------------------------------------
    async def close(self) -> None:
        """Ask every worker to stop; kill those still running after ``stop_timeout``."""
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        workers = self.workers
        await asyncio.gather(
            *(asyncio.wait_for(w.call(Stop()), self.stop_timeout) for w in workers if w.alive),
            return_exceptions=True,
        )
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(None, w.process.join, self.stop_timeout) for w in workers)
        )
        for worker in workers:
            self._kill(worker)
        self._workers.clear()

    def _kill(self, worker: _Worker) -> None:
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(1)
        if worker.transport is not None:
            worker.transport.close()


class WorkerRunner:
    """A ``ModelRunner`` whose model lives in every process of a ``WorkerPool``."""

    queues = True  # requests may wait for a free worker slot

    def has_capacity(self) -> bool:
        return self.pool.has_capacity(self.key)

    def __init__(self, settings: ModelSettings, pool: WorkerPool, key: str | None = None) -> None:
        self.settings = settings
        self.pool = pool
        # Unique per runner, so a reload's new instance and the old one coexist in workers
        # (``key``: the one a shared pool's owner gave it).
        self.key = key or f"{settings.name}#{next(_runner_ids)}"

    @property
    def concurrency(self) -> int:
        """Predictions that compute at once (one per worker)."""
        return self.pool.size

    @property
    def pipeline_depth(self) -> int:
        """Calls one worker holds at once (see ``WorkerPool``'s ``max_in_flight``)."""
        return self.pool.max_in_flight

    async def load(self) -> MetadataModelResponse:
        return await self.pool.load(self.key, self.settings)

    async def predict(self, request: InferenceRequest) -> InferenceResponse:
        return await self.pool.predict(self.key, request)

    def predict_stream(
        self, requests: AsyncIterator[InferenceRequest]
    ) -> AsyncIterator[InferenceResponse]:
        """The model's stream, run in one worker (the deadline is the caller's, now)."""
        return self.pool.stream(self.key, requests, current_deadline())

    async def unload(self) -> None:
        await self.pool.unload(self.key)


class DeferredWorkerRunner:
    """Base of the runners whose ``WorkerRunner`` is made at load, once their pool is known
    (a model's own or group pool, an environment's pool); calls then go to it."""

    queues = True  # requests may wait for a free worker slot
    _runner: WorkerRunner | None = None

    @property
    def pool(self) -> WorkerPool | None:
        """The pool it runs in (None until loaded)."""
        return None if self._runner is None else self._runner.pool

    @property
    def pipeline_depth(self) -> int:
        """Calls one of the pool's workers holds at once (1 until loaded)."""
        return 1 if self._runner is None else self._runner.pipeline_depth

    def has_capacity(self) -> bool:
        return self._runner is None or self._runner.has_capacity()

    async def predict(self, request: InferenceRequest) -> InferenceResponse:
        assert self._runner is not None, "predict() before load()"
        return await self._runner.predict(request)

    def predict_stream(
        self, requests: AsyncIterator[InferenceRequest]
    ) -> AsyncIterator[InferenceResponse]:
        assert self._runner is not None, "predict_stream() before load()"
        return self._runner.predict_stream(requests)
