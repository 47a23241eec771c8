"""Parent side of the worker processes: spawn, dispatch, replace the dead, stop in order.

Each worker is a ``spawn``-started process joined to the server by one socket pair.
Requests go to the least-busy live worker that has the model, with at most
``max_in_flight`` outstanding per worker. When a worker dies, the calls it held fail
at once with ``WorkerError`` (503); a replacement is started and every model loaded
through the pool is loaded into it again, while the other workers keep serving.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import socket
from typing import Any, Callable, Optional

from ...errors import WorkerError
from ...settings import ModelSettings
from ...types import InferenceRequest, InferenceResponse, MetadataModelResponse
from .messages import Call, FrameDecoder, LoadModel, Ping, Predict, Reply, Stop, UnloadModel, encode_frame
from .worker import run_worker

logger = logging.getLogger("mlpack.workers")

WorkerTarget = Callable[..., None]


class _Worker(asyncio.Protocol):
    """One worker process and the parent's end of its socket."""

    def __init__(self, worker_id: int, process: Any, on_lost: Callable[["_Worker"], None]) -> None:
        self.worker_id = worker_id
        self.process = process
        self.on_lost = on_lost
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.models: set[str] = set()
        self.alive = False
        self.transport: Optional[asyncio.Transport] = None
        self._decoder = FrameDecoder()
        self._ids = itertools.count()

    @property
    def in_flight(self) -> int:
        return len(self.pending)

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
            if future is None or future.done():
                continue
            if reply.error is not None:
                future.set_exception(reply.error)
            else:
                future.set_result(reply.value)

    def connection_lost(self, exc: Optional[Exception]) -> None:
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
        try:
            return await future
        finally:
            self.pending.pop(call_id, None)


class WorkerPool:
    """N worker processes shared by every model that runs in workers.

    Parameters:
        size: number of worker processes.
        stop_timeout: how long ``close`` waits for workers to exit before killing them.
        max_in_flight: most requests outstanding per worker.
        start_timeout: how long a new worker may take to answer its first ping.
        target: the child's entry function (``run_worker``; tests pass their own).
    """

    def __init__(
        self,
        size: int,
        stop_timeout: float = 5.0,
        max_in_flight: int = 2,
        start_timeout: float = 60.0,
        target: WorkerTarget = run_worker,
    ) -> None:
        self.size = size
        self.stop_timeout = stop_timeout
        self.max_in_flight = max_in_flight
        self.start_timeout = start_timeout
        self._target = target
        self._context = multiprocessing.get_context("spawn")
        self._workers: dict[int, _Worker] = {}
        self._models: dict[str, ModelSettings] = {}
        self._changed: Optional[asyncio.Condition] = None
        self._waiters = 0
        self._stopping = False
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def workers(self) -> list[_Worker]:
        return list(self._workers.values())

    async def start(self) -> None:
        """Start every worker and wait until each answers."""
        self._changed = asyncio.Condition()
        await asyncio.gather(*(self._spawn(worker_id) for worker_id in range(self.size)))

    async def _spawn(self, worker_id: int) -> _Worker:
        parent_end, child_end = socket.socketpair()
        process = self._context.Process(
            target=self._target, args=(child_end, worker_id),
            name=f"mlpack-worker-{worker_id}", daemon=True,
        )
        try:
            process.start()
        finally:
            child_end.close()
        worker = _Worker(worker_id, process, self._on_lost)
        loop = asyncio.get_running_loop()
        await loop.connect_accepted_socket(lambda: worker, parent_end)
        try:
            await asyncio.wait_for(worker.call(Ping()), self.start_timeout)
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
        logger.error("%s died (exit code %s); starting a replacement",
                     worker.describe(), worker.process.exitcode)
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
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

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
            await asyncio.gather(*(w.call(UnloadModel(key)) for w in workers if w.alive),
                                 return_exceptions=True)
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
        await asyncio.gather(*(w.call(UnloadModel(key)) for w in workers if w.alive),
                             return_exceptions=True)

    # -- inference --------------------------------------------------------------------
    def _pick(self, key: str) -> Optional[_Worker]:
        best: Optional[_Worker] = None
        for worker in self._workers.values():
            if worker.alive and key in worker.models and worker.in_flight < self.max_in_flight:
                if best is None or worker.in_flight < best.in_flight:
                    best = worker
        return best

    async def predict(self, key: str, request: InferenceRequest) -> InferenceResponse:
        worker = self._pick(key)
        if worker is None:
            worker = await self._wait_for_worker(key)
        try:
            response: InferenceResponse = await worker.call(Predict(key, request))
        finally:
            if self._waiters:
                await self._notify()
        return response

    async def _wait_for_worker(self, key: str) -> _Worker:
        """Wait (no longer than ``start_timeout``) until a worker with ``key`` has a free slot."""
        assert self._changed is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        while True:
            # Pick right after waking, with no await in between, so no other task takes the slot.
            worker = self._pick(key)
            if worker is not None:
                return worker
            if key not in self._models or loop.time() >= deadline:
                raise WorkerError(f"model '{key.rsplit('#', 1)[0]}' is not loaded in any worker")
            self._waiters += 1
            try:
                async with self._changed:
                    try:
                        async with asyncio.timeout(deadline - loop.time()):
                            await self._changed.wait()
                    except TimeoutError:
                        pass
            finally:
                self._waiters -= 1

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
