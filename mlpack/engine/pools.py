"""Which process pool each model runs in, and the per-model / per-group pools themselves.

A model's ``parallel_workers`` (alias ``instance_count``) overrides the server's: 0 runs it
in the server process, N in a pool of N processes of its own. Models naming the same
``worker_pool`` (alias ``inference_pool_gid``) share one pool with as many processes as
the largest count among them (the server's ``parallel_workers`` for those that set none,
at least 1). A model that sets neither runs where the server's ``parallel_workers`` says:
the shared default pool, or in-process. Own and group pools fork their workers from a
zygote that loaded the models once, unless one of their models has ``preload: false``.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..settings import ModelSettings
from ..types import MetadataModelResponse
from .workers.held import HeldPoolRunner
from .workers.memory import pss_bytes
from .workers.pool import (
    DEFAULT_POOL_LIMITS,
    PoolLimits,
    WorkerPool,
    WorkerRunner,
)
from .workers.zygote import run_zygote
from .workers.zygote_pool import ZygotePool

logger = logging.getLogger("mlpack.engine")

PoolKind = Literal["server", "default", "model", "group"]


@dataclass(frozen=True)
class PoolChoice:
    """Where one model runs: ``kind``, the pool's ``name`` and its ``size`` (0: in-process)."""

    kind: PoolKind
    name: str
    size: int
    zygote: bool = False


@dataclass
class PlannedPool:
    """One pool of the plan: its processes and the models they serve."""

    choice: PoolChoice
    models: list[str] = field(default_factory=list)


def group_sizes(models: Iterable[ModelSettings], default_workers: int) -> dict[str, int]:
    """Processes of each named pool: the largest count among its models (at least 1)."""
    sizes: dict[str, int] = {}
    for model in models:
        if model.worker_pool:
            wanted = model.parallel_workers
            count = max(1, default_workers if wanted is None else wanted)
            sizes[model.worker_pool] = max(sizes.get(model.worker_pool, 1), count)
    return sizes


def group_preloads(models: Iterable[ModelSettings]) -> dict[str, bool]:
    """Whether each named pool forks from a zygote (no model in it has ``preload: false``)."""
    preloads: dict[str, bool] = {}
    for model in models:
        if model.worker_pool:
            preloads[model.worker_pool] = preloads.get(model.worker_pool, True) and model.preload
    return preloads


def choose_pool(
    settings: ModelSettings,
    default_workers: int,
    sizes: dict[str, int] | None = None,
    preloads: dict[str, bool] | None = None,
) -> PoolChoice:
    """Where ``settings`` runs, given the server's default count and the groups' sizes."""
    if settings.worker_pool:
        group = settings.worker_pool
        size = (sizes or {}).get(group) or group_sizes([settings], default_workers)[group]
        zygote = (preloads or {}).get(group, settings.preload)
        return PoolChoice("group", f"group:{group}", size, zygote)
    count = settings.parallel_workers
    if count is None:
        if default_workers > 0:
            return PoolChoice("default", "default", default_workers)
        return PoolChoice("server", "server", 0)
    if count == 0:
        return PoolChoice("server", "server", 0)
    return PoolChoice("model", f"model:{settings.name}", count, settings.preload)


def plan_pools(models: Iterable[ModelSettings], default_workers: int) -> list[PlannedPool]:
    """Every pool the models need, in order of first use, each with its models."""
    models = list(models)
    sizes, preloads = group_sizes(models, default_workers), group_preloads(models)
    planned: dict[str, PlannedPool] = {}
    for model in models:
        choice = choose_pool(model, default_workers, sizes, preloads)
        planned.setdefault(choice.name, PlannedPool(choice)).models.append(model.name)
    return list(planned.values())


def describe_pool(choice: PoolChoice, models: list[str]) -> str:
    """One line for the banner and ``--plan``: the pool, its processes and its models."""
    names = ", ".join(models) or "(none yet)"
    if choice.kind == "server":
        return f"in the server process: {names}"
    how = ", forked from a zygote" if choice.zygote else ""
    plural = "es" if choice.size != 1 else ""
    return f"pool {choice.name}: {choice.size} process{plural}{how}: {names}"


def pool_pss(pool: WorkerPool) -> int:
    """PSS in bytes of a pool's live workers plus its zygote, if it has one."""
    pids = [worker.process.pid for worker in pool.workers if worker.alive]
    zygote = getattr(pool, "zygote", None)
    if zygote is not None and zygote.pid is not None and zygote.alive():
        pids.append(zygote.pid)
    return sum(pss_bytes(pid) for pid in pids)


def start_zygote_process(sock: socket.socket) -> Any:
    """Start a zygote with the server's Python (``spawn``: a clean interpreter)."""
    process = multiprocessing.get_context("spawn").Process(
        target=run_zygote, args=(sock,), name="mlpack-zygote", daemon=True
    )
    process.start()
    return process


class ModelPools:
    """The pools of models with their own count or a named group, started on first use.

    Parameters:
        default_workers: the server's ``parallel_workers`` (sizes groups whose models set none).
        stop_timeout: how long stopping waits for a worker.
        limits: queue bound, health pings, recycling and restart backoff of every pool.
        models: the models known at start, so a group is sized by all its members.
    """

    def __init__(
        self,
        default_workers: int = 0,
        stop_timeout: float = 5.0,
        limits: PoolLimits = DEFAULT_POOL_LIMITS,
        models: Iterable[ModelSettings] = (),
    ) -> None:
        self.default_workers = default_workers
        self.stop_timeout = stop_timeout
        self.limits = limits
        models = list(models)
        self._sizes = group_sizes(models, default_workers)
        self._preloads = group_preloads(models)
        self._pools: dict[str, WorkerPool] = {}
        self._choices: dict[str, PoolChoice] = {}
        self._users: dict[str, set[str]] = {}  # pool name -> runner keys using it
        self._lock = asyncio.Lock()

    def choice(self, settings: ModelSettings) -> PoolChoice:
        return choose_pool(settings, self.default_workers, self._sizes, self._preloads)

    def pools(self) -> list[tuple[str, WorkerPool]]:
        """Each started pool by name (for gauges)."""
        return list(self._pools.items())

    def described(self) -> list[tuple[PoolChoice, WorkerPool]]:
        return [(self._choices[name], pool) for name, pool in self._pools.items()]

    async def acquire(self, choice: PoolChoice, user: str) -> WorkerPool:
        """The started pool for ``choice`` (started now if it is new), used by ``user``."""
        async with self._lock:
            pool = self._pools.get(choice.name)
            if pool is None:
                pool = self._new_pool(choice)
                await pool.start()
                self._pools[choice.name] = pool
                self._choices[choice.name] = choice
                logger.info("pool %s started: %d process(es)", choice.name, choice.size)
            elif self._choices[choice.name].size != choice.size:
                logger.warning(
                    "pool %s keeps its %d processes (a model asked for %d)",
                    choice.name,
                    self._choices[choice.name].size,
                    choice.size,
                )
            self._users.setdefault(choice.name, set()).add(user)
            return pool

    async def release(self, choice: PoolChoice, user: str) -> None:
        """``user`` is done with the pool; the last one out stops it (its memory is freed)."""
        async with self._lock:
            users = self._users.get(choice.name, set())
            users.discard(user)
            pool = self._pools.get(choice.name)
            if users or pool is None:
                return
            del self._pools[choice.name]
            del self._choices[choice.name]
            self._users.pop(choice.name, None)
        logger.info("pool %s stopped: no model uses it", choice.name)
        await pool.close()

    def _new_pool(self, choice: PoolChoice) -> WorkerPool:
        kwargs = self.limits.as_kwargs()
        if choice.zygote:
            return ZygotePool(
                choice.size, start_zygote_process, stop_timeout=self.stop_timeout, **kwargs
            )
        return WorkerPool(choice.size, stop_timeout=self.stop_timeout, **kwargs)

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        await asyncio.gather(*(pool.close() for pool in pools), return_exceptions=True)


class PooledRunner(HeldPoolRunner):
    """A ``ModelRunner`` on a pool that is found (or started) when the model loads.

    Parameters:
        settings: the model.
        acquire: returns the started pool, given a key naming this runner as its user.
        release: tells the pool's owner this runner is done with it.
        concurrency: the pool's processes.
    """

    def __init__(
        self,
        settings: ModelSettings,
        acquire: Callable[[str], Awaitable[WorkerPool]],
        release: Callable[[str], Awaitable[None]],
        concurrency: int,
    ) -> None:
        super().__init__(settings, concurrency)
        self._acquire_pool = acquire
        self._release_pool = release

    async def _acquire(self) -> tuple[WorkerRunner, MetadataModelResponse | None]:
        return WorkerRunner(self.settings, await self._acquire_pool(self._user)), None

    async def _start(
        self, runner: WorkerRunner, metadata: MetadataModelResponse | None
    ) -> MetadataModelResponse:
        return await runner.load()  # into every worker of the pool

    async def _stop(self, runner: WorkerRunner) -> None:
        await runner.unload()

    async def _release(self, runner: WorkerRunner) -> None:
        await self._release_pool(self._user)
