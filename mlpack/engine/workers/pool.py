"""Parent side of the worker processes: spawn, dispatch, replace the dead, stop in order.

Each worker is a ``spawn``-started process joined to the server by one socket pair.
Requests go to the least-busy live worker that has the model, with at most
``max_in_flight`` outstanding per worker. When a worker dies, the calls it held fail
at once with ``WorkerError`` (503); a replacement is started and every model loaded
through the pool is loaded into it again, while the other workers keep serving.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import multiprocessing
import socket
from collections.abc import Callable
from typing import Any

from ... import tracing
from ...errors import WorkerError
from ...settings import ModelSettings
from ...types import InferenceRequest, InferenceResponse, MetadataModelResponse
from .messages import (
    Call,
    FrameDecoder,
    LoadModel,
    Ping,
    Predict,
    Reply,
    Stop,
    UnloadModel,
    encode_frame,
    pack_request,
    unpack_response,
)
from .worker import run_worker

logger = logging.getLogger("mlpack.workers")

WorkerTarget = Callable[..., None]
_runner_ids = itertools.count(1)


class _Worker(asyncio.Protocol):
    """One worker process and the parent's end of its socket.

    A call whose caller gave up (client gone, deadline) stays in ``pending`` until the
    worker answers it: the worker is still busy with it, so its slot stays taken, and a
    stuck worker stops receiving new requests instead of piling them up.
    """

    def __init__(
        self,
        worker_id: int,
        process: Any,
        on_lost: Callable[[_Worker], None],
        on_free: Callable[[], None],
    ) -> None:
        self.worker_id = worker_id
        self.process = process
        self.on_lost = on_lost
        self.on_free = on_free
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.reserved = 0  # slots handed to waiting requests that have not called yet
        self.models: set[str] = set()
        self.alive = False
        self.transport: asyncio.Transport | None = None
        self._decoder = FrameDecoder()
        self._ids = itertools.count()

    @property
    def in_flight(self) -> int:
        return len(self.pending) + self.reserved

    def describe(self) -> str:
        return f"worker {self.worker_id} (pid {self.process.pid})"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.alive = True

    def data_received(self, data: bytes) -> None:
        for reply in self._decoder.feed(data):
            if not isinstance(reply, Reply):
                continue
            future = self.pending.pop(reply.call_id, None)
            if future is None:
                continue
            if future.done():  # its caller gave up: the slot it held is free only now
                self.on_free()
                continue
            if reply.error is not None:
                future.set_exception(reply.error)
            else:
                future.set_result(reply.value)

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        pending, self.pending = self.pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(
                    WorkerError(f"{self.describe()} exited while serving this request; retry it")
                )
        self.on_lost(self)

    async def call(self, body: Any) -> Any:
        if not self.alive or self.transport is None:
            raise WorkerError(f"{self.describe()} is not running")
        call_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[call_id] = future
        self.transport.writelines(encode_frame(Call(call_id, body)))
        return await future  # cancelled: the entry stays until the worker's reply


class WorkerPool:
    """N worker processes shared by every model that runs in workers.

    Parameters:
        size: number of worker processes.
        stop_timeout: how long ``close`` waits for workers to exit before killing them.
        max_in_flight: most requests outstanding per worker.
        start_timeout: how long a new worker may take to answer its first ping.
        target: the child's entry function (``run_worker``; tests pass their own).
        start_process: starts a worker some other way, given the child's socket and the
            worker id, returning a process-like handle (pid, exitcode, is_alive, join, kill);
            per-model environments use it to start workers with their own Python.
    """

    def __init__(
        self,
        size: int,
        stop_timeout: float = 5.0,
        max_in_flight: int = 2,
        start_timeout: float = 60.0,
        target: WorkerTarget = run_worker,
        start_process: Callable[[socket.socket, int], Any] | None = None,
    ) -> None:
        self.size = size
        self.stop_timeout = stop_timeout
        self.max_in_flight = max_in_flight
        self.start_timeout = start_timeout
        self._target = target
        self._start_process = start_process
        self._context = multiprocessing.get_context("spawn")
        self._workers: dict[int, _Worker] = {}
        self._models: dict[str, ModelSettings] = {}
        # Requests waiting for a free slot, oldest first; a freed slot goes to the oldest
        # waiter whose model it can serve (no thundering herd, no overtaking).
        self._waiting: collections.deque[tuple[str, asyncio.Future[_Worker]]] = collections.deque()
        self._stopping = False
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def workers(self) -> list[_Worker]:
        return list(self._workers.values())

    def waiting_keys(self) -> list[str]:
        """The model key of each request waiting for a free slot (for gauges)."""
        return [key for key, _ in self._waiting]

    async def start(self) -> None:
        """Start every worker and wait until each answers."""
        await asyncio.gather(*(self._spawn(worker_id) for worker_id in range(self.size)))

    async def _spawn(self, worker_id: int) -> _Worker:
        parent_end, child_end = socket.socketpair()
        try:
            if self._start_process is not None:
                process = self._start_process(child_end, worker_id)
            else:
                process = self._context.Process(
                    target=self._target,
                    args=(child_end, worker_id),
                    name=f"mlpack-worker-{worker_id}",
                    daemon=True,
                )
                process.start()
        finally:
            child_end.close()
        worker = _Worker(worker_id, process, self._on_lost, self._hand_over)
        loop = asyncio.get_running_loop()
        await loop.connect_accepted_socket(lambda: worker, parent_end)
        try:
            async with asyncio.timeout(self.start_timeout):
                await worker.call(Ping())
        except BaseException:
            self._kill(worker)
            raise
        for key, settings in list(self._models.items()):
            await worker.call(LoadModel(key, settings))
            worker.models.add(key)
        self._workers[worker_id] = worker
        await self._notify()
        logger.info("%s started", worker.describe())
        return worker

    def _on_lost(self, worker: _Worker) -> None:
        loop = asyncio.get_running_loop()
        loop.run_in_executor(None, worker.process.join, 5)
        if self._workers.get(worker.worker_id) is not worker:
            return  # never started, or already replaced
        del self._workers[worker.worker_id]
        if self._stopping:
            return
        logger.error(
            "%s died (exit code %s); starting a replacement",
            worker.describe(),
            worker.process.exitcode,
        )
        task = loop.create_task(self._replace(worker.worker_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _replace(self, worker_id: int) -> None:
        for attempt in range(3):
            if self._stopping:
                return
            try:
                await self._spawn(worker_id)
                return
            except Exception:
                logger.exception("replacing worker %d failed (attempt %d)", worker_id, attempt + 1)
                await asyncio.sleep(1.0)

    async def _notify(self) -> None:
        self._hand_over()

    def _has_free_slot(self) -> bool:
        return any(w.alive and w.in_flight < self.max_in_flight for w in self._workers.values())

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
            future.set_result(worker)
            if not self._has_free_slot():
                break
        still_waiting.extend(self._waiting)
        self._waiting = still_waiting

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
        await self._notify()
        metadata: MetadataModelResponse = results[0]  # type: ignore[assignment]
        return metadata

    async def unload(self, key: str) -> None:
        self._models.pop(key, None)
        workers = [w for w in self.workers if key in w.models]
        for worker in workers:
            worker.models.discard(key)
        await asyncio.gather(
            *(w.call(UnloadModel(key)) for w in workers if w.alive), return_exceptions=True
        )

    # -- inference --------------------------------------------------------------------
    def _pick(self, key: str) -> _Worker | None:
        best: _Worker | None = None
        for worker in self._workers.values():
            if (
                worker.alive
                and key in worker.models
                and worker.in_flight < self.max_in_flight
                and (best is None or worker.in_flight < best.in_flight)
            ):
                best = worker
        return best

    async def predict(self, key: str, request: InferenceRequest) -> InferenceResponse:
        worker = None if self._waiting else self._pick(key)  # never overtake a waiter
        reserved = worker is None
        if worker is None:
            worker = await self._wait_for_worker(key)
        try:
            if reserved:
                worker.reserved -= 1  # the call below holds the slot from here on
            body = Predict(key, pack_request(request))
            if tracing.active:
                attributes = {"mlpack.worker.id": worker.worker_id}
                with tracing.span("worker", attributes, kind=tracing.client_kind()):
                    body.trace = tracing.inject()  # the worker's spans are children of this one
                    packed = await worker.call(body)
            else:
                packed = await worker.call(body)
        finally:
            self._hand_over()
        return unpack_response(packed)

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
            if future.done() and not future.cancelled():
                future.result().reserved -= 1  # handed over just as we gave up: give it back
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

    def __init__(self, settings: ModelSettings, pool: WorkerPool) -> None:
        self.settings = settings
        self.pool = pool
        # Unique per runner, so a reload's new instance and the old one coexist in workers.
        self.key = f"{settings.name}#{next(_runner_ids)}"

    @property
    def concurrency(self) -> int:
        return self.pool.size

    async def load(self) -> MetadataModelResponse:
        return await self.pool.load(self.key, self.settings)

    async def predict(self, request: InferenceRequest) -> InferenceResponse:
        return await self.pool.predict(self.key, request)

    async def unload(self) -> None:
        await self.pool.unload(self.key)
