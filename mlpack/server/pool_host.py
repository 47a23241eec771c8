"""The supervisor's worker pools, shared by every front-end (``--frontends N`` with pools).

The supervisor places models exactly as one server does (``engine.placement``: default
pool, a model's own or group pool with its zygote, environment pools) and owns those
pools: it spawns, pings, replaces, recycles and stops their workers. Every worker also
listens on a Unix socket in a private run folder (``tempfile.mkdtemp``: mode 0700,
removed at shutdown), where each front-end opens its own data connection.

A front-end's runner for a pooled model asks ``acquire`` (over the control link); a model
is loaded into its pool once per (name, generation) however many front-ends ask: the
generation is 0 for the models found at startup and the supervisor's number of the
repository call otherwise, so one repository load reaches the pool once. Each runner
holds it until ``release``; the last release unloads it (so does the death of the
front-ends holding it). Every change to a pool's workers or models is announced to every
front-end (``PoolWorkers``), and a pool's announcement precedes an acquire's answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.placement import RunnerPlacement
from ..engine.runner import ModelRunner
from ..engine.workers.pool import DeferredWorkerRunner, WorkerPool, WorkerRunner
from ..errors import MLPackError
from ..settings import ModelSettings, Settings
from ..types import MetadataModelResponse
from .frontend_link import PoolAcquire, PoolAnswer, PoolRelease, PoolWorkers, as_error

logger = logging.getLogger("mlpack.frontends")


@dataclass
class _Shared:
    """One model loaded into a shared pool, and the front-end runners holding it."""

    name: str
    generation: int
    task: asyncio.Task[tuple[ModelRunner, MetadataModelResponse]]
    users: set[tuple[int, str]] = field(default_factory=set)  # (front-end pid, runner)
    runner: ModelRunner | None = None
    key: str = ""
    pool: str = ""


def worker_runner(runner: ModelRunner) -> WorkerRunner | None:
    """The ``WorkerRunner`` a loaded pool runner calls through (None: not in a pool)."""
    if isinstance(runner, WorkerRunner):
        return runner
    if isinstance(runner, DeferredWorkerRunner):
        return runner._runner
    return None


class PoolHost:
    """Every worker pool of the front-ends, owned by the supervisor.

    Parameters:
        settings: the server's settings (pool sizes and limits, environments).
        models: the models found at startup (they size named pools).
        repository_root: where environments live by default.
        frontends: how many front-ends connect to each worker (bounds its connections).
    """

    def __init__(
        self,
        settings: Settings,
        models: list[ModelSettings],
        repository_root: Path | None,
        frontends: int = 1,
    ) -> None:
        from .app import build_placement

        self.run_folder = tempfile.mkdtemp(prefix="mlpack-run-")  # mode 0700
        self.placement: RunnerPlacement = build_placement(
            settings, models, repository_root, run_folder=self.run_folder, frontends=frontends
        )
        self.announce: Callable[[PoolWorkers], None] = lambda message: None
        self._shared: dict[tuple[str, int], _Shared] = {}
        self._by_key: dict[str, _Shared] = {}
        self._dirty: set[str] = set()

    async def start(self) -> None:
        """Start the default pool (when a model found at startup uses it)."""
        logger.info("shared worker pools: workers' sockets in %s", self.run_folder)
        await self.placement.start()
        self._watch_pools()

    def pools(self) -> list[tuple[str, WorkerPool]]:
        return self.placement.pools()

    async def refresh(self, timeout: float) -> None:
        """Ask every shared worker its status (what all front-ends gave it), for a scrape."""
        await asyncio.gather(*(pool.refresh_status(timeout) for _, pool in self.pools()))

    def describe(self) -> list[str]:
        """One line per shared pool: its processes, models and memory."""
        return [line for line in self.placement.describe(()) if line.startswith("pool ")]

    # -- front-ends' calls ---------------------------------------------------------------
    async def acquire(self, message: PoolAcquire) -> PoolAnswer:
        settings, generation = message.settings, message.generation
        ident = (settings.name, generation)
        entry = self._shared.get(ident)
        if entry is None:
            task = asyncio.ensure_future(self._load(settings))
            entry = self._shared[ident] = _Shared(settings.name, generation, task)
        user = (message.pid, message.user)
        entry.users.add(user)
        try:
            runner, metadata = await asyncio.shield(entry.task)
        except BaseException as error:
            entry.users.discard(user)
            if self._shared.get(ident) is entry and entry.task.done():
                del self._shared[ident]  # a later call tries again
            if isinstance(error, asyncio.CancelledError):
                raise
            return PoolAnswer(message.call_id, error=as_error(error))
        if entry.runner is None:
            inner = worker_runner(runner)
            assert inner is not None, "a shared model runs in a pool"
            entry.runner, entry.key = runner, inner.key
            entry.pool = self._pool_name(inner.pool)
            self._by_key[entry.key] = entry
            logger.info(
                "model '%s' loaded once in shared pool %s (key %s)",
                settings.name,
                entry.pool,
                entry.key,
            )
        return PoolAnswer(message.call_id, entry.pool, entry.key, metadata)

    async def _load(self, settings: ModelSettings) -> tuple[ModelRunner, MetadataModelResponse]:
        if not self.placement.in_pool(settings):
            raise MLPackError(f"model '{settings.name}' does not run in a worker pool")
        runner = self.placement.base_runner(settings)
        metadata = await runner.load()
        self._watch_pools()
        return runner, metadata

    async def release(self, message: PoolRelease) -> PoolAnswer:
        entry = self._by_key.get(message.key)
        if entry is not None:
            entry.users.discard((message.pid, message.user))
            if not entry.users:
                await self._unload(entry)
        return PoolAnswer(message.call_id)

    async def release_frontend(self, pid: int) -> None:
        """A front-end died: what its runners held is released."""
        for entry in list(self._by_key.values()):
            entry.users = {user for user in entry.users if user[0] != pid}
            if not entry.users:
                await self._unload(entry)

    async def _unload(self, entry: _Shared) -> None:
        if self._by_key.get(entry.key) is not entry:
            return
        del self._by_key[entry.key]
        if self._shared.get((entry.name, entry.generation)) is entry:
            del self._shared[(entry.name, entry.generation)]
        logger.info("model '%s' unloaded from shared pool %s", entry.name, entry.pool)
        if entry.runner is not None:
            try:
                await entry.runner.unload()
            except Exception as error:
                logger.warning("unloading '%s' from pool %s: %s", entry.name, entry.pool, error)

    # -- announcements -----------------------------------------------------------------------
    def _pool_name(self, pool: WorkerPool) -> str:
        for name, candidate in self.placement.pools():
            if candidate is pool:
                return name
        raise MLPackError("a shared model's pool is not among the supervisor's pools")

    def _watch_pools(self) -> None:
        """Announce changes of every started pool (pools start when a model needs them)."""
        for name, pool in self.placement.pools():
            if pool.on_change is None:
                pool.on_change = functools.partial(self.changed, name)

    def changed(self, name: str) -> None:
        """Pool ``name`` changed: announce it once this turn of the loop is over."""
        if not self._dirty:
            asyncio.get_running_loop().call_soon(self._flush)
        self._dirty.add(name)

    def _flush(self) -> None:
        names, self._dirty = self._dirty, set()
        for name in sorted(names):
            self.announce(self.snapshot(name))

    def snapshot(self, name: str) -> PoolWorkers:
        """Pool ``name``'s workers and models now (empty once it has stopped)."""
        pool = dict(self.placement.pools()).get(name)
        if pool is None:
            return PoolWorkers(name, 0, {}, [])
        return PoolWorkers(name, pool.size, pool.model_settings(), pool.shared_workers())

    def snapshots(self) -> list[PoolWorkers]:
        return [self.snapshot(name) for name, _ in self.placement.pools()]

    async def close(self) -> None:
        """Stop every pool (the front-ends have exited), then remove the run folder."""
        try:
            for entry in list(self._by_key.values()):
                with contextlib.suppress(Exception):
                    await self._unload(entry)
            await self.placement.close()
        finally:
            shutil.rmtree(self.run_folder, ignore_errors=True)
