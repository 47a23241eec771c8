"""A front-end's view of a worker pool its supervisor owns (several front-ends, shared pools).

The supervisor starts, pings, replaces, recycles and stops the workers and loads models
into them once; it tells each front-end the current workers of each pool (``update``:
socket path, pid, model keys) at start and after every change. A ``RemotePool`` connects
to each announced worker's socket (its own data connection: own call ids, cancels and
streams) and dispatches exactly as ``WorkerPool`` does, through the same ``_Worker``
protocol: least-busy per model, at most ``max_in_flight`` (``worker_pipeline_depth``)
calls of *this* front-end per worker (so a worker holds at most front-ends x depth calls),
deadlines, cancels, hard limits (a hung call gets its worker killed by pid; the
supervisor replaces it), streams with credit. A worker that dies fails this front-end's
calls on it at once with ``WorkerError`` (503). A worker that leaves the announced set
(retiring, recycled, rolled) gets no new calls and its connection closes once this
front-end's calls on it are answered; the supervisor stops it after that.

Loading goes through a ``PoolBroker`` (the supervisor): ``SharedRunner.load`` asks it to
load the model into its pool (once, however many front-ends ask) and gets the pool's key
and the model's metadata back; ``unload`` releases it (the last release unloads). It holds
the pool the way a model's own pool is held (``engine.workers.held.HeldPoolRunner``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from ...errors import WorkerError
from ...settings import ModelSettings
from ...types import MetadataModelResponse
from .held import HeldPoolRunner
from .messages import WorkerInfo
from .pool import WorkerPool, WorkerRunner, _Worker
from .zygote import ForkedProcess

logger = logging.getLogger("mlpack.workers")

CONNECT_ATTEMPTS = 20  # a worker refusing or not yet listening is tried again, with backoff


@dataclass(frozen=True)
class SharedModel:
    """A model loaded into a supervisor's pool: the pool's name, the model's key in it,
    and its metadata."""

    pool: str
    key: str
    metadata: MetadataModelResponse


class PoolBroker(Protocol):
    """What a front-end asks of the supervisor that owns its pools."""

    async def acquire(self, settings: ModelSettings, user: str) -> SharedModel:
        """Load ``settings`` into its pool (once for all front-ends); ``user`` (a runner)
        holds it until it releases it."""
        ...

    async def release(self, key: str, user: str) -> None:
        """``user`` is done with ``key`` (the last release of all front-ends unloads it)."""
        ...

    def pool(self, name: str) -> RemotePool:
        """This front-end's view of the supervisor's pool ``name``."""
        ...

    def pools(self) -> list[tuple[str, RemotePool]]:
        """This front-end's view of each shared pool, by name."""
        ...

    async def close(self) -> None:
        """Close every connection to shared workers (the supervisor stops them)."""
        ...


class RemotePool(WorkerPool):
    """A ``WorkerPool`` whose workers another process owns: fed worker-set changes.

    Parameters:
        name: the pool's name (as the supervisor announces it).
        size: the pool's processes.
        max_in_flight: most calls this front-end holds on one worker at once.
        max_queue_size: most requests waiting here for a slot (beyond: 503).
        start_timeout: longest a request waits for a slot, and a load for a worker.
    """

    def __init__(
        self,
        name: str,
        size: int,
        max_in_flight: int = 2,
        max_queue_size: int = 4096,
        start_timeout: float = 60.0,
    ) -> None:
        super().__init__(
            size,
            max_in_flight=max_in_flight,
            max_queue_size=max_queue_size,
            start_timeout=start_timeout,
            ping_interval=0,  # the owner pings
        )
        self.name = name
        self._announced: dict[str, WorkerInfo] = {}  # by socket path
        self._connecting: set[str] = set()
        self._changed_event = asyncio.Event()

    async def start(self) -> None:
        """Nothing to start: workers come with announcements."""

    def update(
        self, size: int, models: dict[str, ModelSettings], workers: Iterable[WorkerInfo]
    ) -> None:
        """The owner's current worker set and models (replaces the previous one)."""
        self.size = size
        self._models = dict(models)
        self._announced = {info.path: info for info in workers}
        for worker in list(self._workers.values()):
            info = self._announced.get(worker.path)
            if info is None:
                self._let_go(worker)
            else:
                worker.models = set(info.models)
        known = {w.path for w in self._workers.values()} | self._connecting
        for path, info in self._announced.items():
            if path not in known:
                self._connecting.add(path)
                self._background(self._connect(info))
        self._fail_waiters_without_capacity()
        self._signal()
        self._hand_over()

    def _signal(self) -> None:
        self._changed_event.set()
        self._changed_event = asyncio.Event()

    def _let_go(self, worker: _Worker) -> None:
        """A worker left the set: no new calls; close once this front-end's calls end."""
        worker.retiring = True
        if self._workers.get(worker.worker_id) is worker:
            del self._workers[worker.worker_id]
        self._background(self._close_when_idle(worker))

    async def _close_when_idle(self, worker: _Worker) -> None:
        await worker.answered_all()
        if worker.transport is not None:
            worker.transport.close()

    async def _connect(self, info: WorkerInfo) -> None:
        delay = 0.05
        try:
            for _ in range(CONNECT_ATTEMPTS):
                if self._stopping or info.path not in self._announced:
                    return
                worker = _Worker(
                    info.worker_id,
                    ForkedProcess(info.pid, frozenset()),
                    self._on_lost,
                    self._hand_over,
                    self._call_done,
                )
                worker.counts = self._counts
                worker.path = info.path
                loop = asyncio.get_running_loop()
                try:
                    async with asyncio.timeout(self.start_timeout):
                        await loop.create_unix_connection(_factory(worker), info.path)
                except (OSError, TimeoutError) as error:
                    logger.debug("connecting to %s: %s", info.path, error)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                current = self._announced.get(info.path)
                if current is None or self._stopping or not worker.alive:
                    if worker.transport is not None:
                        worker.transport.close()
                    return
                worker.models = set(current.models)
                previous = self._workers.get(worker.worker_id)
                if previous is not None:  # the one it replaces, not yet noticed gone
                    self._let_go(previous)
                self._workers[worker.worker_id] = worker
                self._signal()
                self._hand_over()
                return
            logger.warning("could not connect to shared worker pid %d (%s)", info.pid, info.path)
        finally:
            self._connecting.discard(info.path)

    def _on_lost(self, worker: _Worker) -> None:
        """Its owner replaces it and announces the successor; calls on it failed already."""
        if self._workers.get(worker.worker_id) is worker:
            del self._workers[worker.worker_id]
        self._fail_waiters_without_capacity()
        self._signal()

    async def wait_ready(self, key: str) -> None:
        """Wait (at most ``start_timeout``) until a connected worker serves ``key``."""
        try:
            async with asyncio.timeout(self.start_timeout):
                while not self.has_capacity(key):
                    await self._changed_event.wait()
        except TimeoutError:
            raise WorkerError(
                f"model '{key.rsplit('#', 1)[0]}': no shared worker of pool {self.name} "
                f"serves it after {self.start_timeout:g}s"
            ) from None

    def _maybe_recycle(self, worker: _Worker) -> None:
        """The owner recycles (it reads each worker's count)."""

    async def close(self) -> None:
        """Close this front-end's connections (the owner stops the workers)."""
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        for worker in self.workers:
            if worker.transport is not None:
                worker.transport.close()
        self._workers.clear()


def _factory(worker: _Worker) -> Callable[[], _Worker]:
    return lambda: worker


class SharedRunner(HeldPoolRunner):
    """A ``ModelRunner`` on a pool the supervisor owns (see ``PoolBroker``).

    Parameters:
        settings: the model.
        broker: loads it into the shared pool and releases it.
        concurrency: the pool's processes.
    """

    def __init__(self, settings: ModelSettings, broker: PoolBroker, concurrency: int) -> None:
        super().__init__(settings, concurrency)
        self._broker = broker

    async def _acquire(self) -> tuple[WorkerRunner, MetadataModelResponse | None]:
        shared = await self._broker.acquire(self.settings, self._user)  # loaded once there
        runner = WorkerRunner(self.settings, self._broker.pool(shared.pool), key=shared.key)
        return runner, shared.metadata

    async def _start(
        self, runner: WorkerRunner, metadata: MetadataModelResponse | None
    ) -> MetadataModelResponse:
        assert metadata is not None
        assert isinstance(runner.pool, RemotePool)
        await runner.pool.wait_ready(runner.key)  # a connected worker serves it
        return metadata

    async def _release(self, runner: WorkerRunner) -> None:
        await self._broker.release(runner.key, self._user)  # the last release unloads
