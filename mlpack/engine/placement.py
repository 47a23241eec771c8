"""Where a model runs: the one place that chooses a runner for each model.

A model with its own environment runs in a worker pool started with that
environment's Python (``workers.interpreters``; its own count gives it its own pool
there). Otherwise ``engine.pools`` decides from the model's ``parallel_workers`` /
``worker_pool`` and the server's ``parallel_workers``: a pool of its own or of its named
group (forked from a zygote), the shared default pool, or a thread of this process
(``LocalRunner``). A model with ``max_batch_size`` above 1 gets an adaptive batcher in
front of whichever runner that is. ``RunnerPlacement`` receives plain values (not the
server's settings) and owns the pools it starts; a front-end among several is given a
``PoolBroker`` instead, and its pooled models run in the supervisor's pools
(``workers.remote``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

from ..environments.extract import ExtractionLimits
from ..settings import ModelSettings
from .batching import BatchingRunner
from .pools import ModelPools, PoolChoice, PooledRunner, PoolKind, describe_pool, pool_pss
from .runner import LocalRunner, ModelRunner
from .workers.interpreters import EnvironmentPools, EnvironmentRunner, OwnPool, has_environment
from .workers.pool import DEFAULT_POOL_LIMITS, PoolLimits, WorkerPool, WorkerRunner
from .workers.remote import PoolBroker, SharedRunner
from .workers.zygote_pool import ZygotePool

logger = logging.getLogger("mlpack.engine")

RunnerFactory = Callable[[ModelSettings], ModelRunner]


class RunnerPlacement:
    """Builds the runner for each model (a registry ``RunnerFactory``) and owns its pools.

    Parameters:
        parallel_workers: processes in the shared worker pool (0: models run in-process).
        workers_timeout: how long stopping waits for a worker.
        environments_dir: where per-model environments are unpacked (None: models that
            name an environment run like any other model).
        build_environments: build environments from requirements / conda files (False:
            such models fail to load, saying how to pack them instead).
        limits: queue bound, health pings, recycling and restart backoff of every pool.
        extraction_limits: bounds on what an environment tarball may unpack to.
        models: the models known at start (a named pool is sized by all its models).
        broker: the supervisor that owns the pools (a front-end among several): pooled
            models run there (``SharedRunner``) and this placement starts no pool.
    """

    def __init__(
        self,
        parallel_workers: int = 0,
        workers_timeout: float = 5.0,
        environments_dir: Path | None = None,
        limits: PoolLimits = DEFAULT_POOL_LIMITS,
        extraction_limits: ExtractionLimits | None = None,
        build_environments: bool = True,
        models: Iterable[ModelSettings] = (),
        broker: PoolBroker | None = None,
    ) -> None:
        models = list(models)
        self.broker = broker
        self.model_pools = ModelPools(parallel_workers, workers_timeout, limits, models)
        self._models = models
        self._in_process: set[str] = set()  # models placed in this process
        self._default_started = False
        self._default_lock = asyncio.Lock()
        self.pool: WorkerPool | None = None
        if parallel_workers > 0 and broker is None:
            self.pool = WorkerPool(
                parallel_workers, stop_timeout=workers_timeout, **limits.as_kwargs()
            )
        self.environment_pools: EnvironmentPools | None = None
        if environments_dir is not None:
            self.environment_pools = EnvironmentPools(
                environments_dir,
                parallel_workers,
                workers_timeout,
                extraction_limits or ExtractionLimits(),
                limits,
                build_environments,
            )

    def __call__(self, settings: ModelSettings) -> ModelRunner:
        runner = self.base_runner(settings)
        if settings.max_batch_size > 1:
            return BatchingRunner(
                runner, settings.max_batch_size, settings.max_batch_time, settings.max_queue_size
            )
        return runner

    def in_pool(self, settings: ModelSettings) -> bool:
        """Whether ``settings`` runs in worker processes (any pool), not in this process."""
        if self.environment_pools is not None and has_environment(settings):
            return True
        return self.model_pools.choice(settings).kind != "server"

    def pool_size(self, settings: ModelSettings) -> int:
        """The processes of the pool ``settings`` runs in (0: this process)."""
        choice = self.model_pools.choice(settings)
        if self.environment_pools is not None and has_environment(settings):
            return choice.size if choice.kind in ("model", "group") else self.environment_pools.size
        return choice.size

    def base_runner(self, settings: ModelSettings) -> ModelRunner:
        """The runner of ``settings`` without a batcher in front."""
        choice = self.model_pools.choice(settings)
        self._in_process.discard(settings.name)
        if self.broker is not None and self.in_pool(settings):
            return SharedRunner(settings, self.broker, self.pool_size(settings))
        if self.environment_pools is not None and has_environment(settings):
            own = None
            if choice.kind in ("model", "group"):
                own = OwnPool(choice.name, choice.size, choice.zygote)
            return EnvironmentRunner(settings, self.environment_pools, own)
        logger.info("model '%s' uses the server's environment", settings.name)
        if choice.kind == "default" and self.pool is not None:
            if self._default_started or not self._models:  # started (or starts) with the server
                return WorkerRunner(settings, self.pool)
            # No model known at start used it: it starts with the first that does.
            return PooledRunner(settings, self._start_default, _keep, self.pool.size)
        if choice.kind in ("model", "group"):
            pools = self.model_pools
            return PooledRunner(
                settings,
                partial(pools.acquire, choice),
                partial(pools.release, choice),
                choice.size,
            )
        self._in_process.add(settings.name)
        return LocalRunner(settings)

    def pools(self) -> list[tuple[str, WorkerPool]]:
        """Every started pool by name: default, own / group, environments (for gauges)."""
        pools = [("default", self.pool)] if self.pool is not None and self._default_started else []
        pools += self.model_pools.pools()
        if self.environment_pools is not None:
            pools += [(f"env:{name}", pool) for name, pool in self.environment_pools.pools()]
        return pools

    def dispatch_pools(self) -> list[tuple[str, WorkerPool]]:
        """The pools this process dispatches to: its own, or a front-end's views of the
        supervisor's shared pools (for gauges of requests waiting here)."""
        if self.broker is not None:
            return list(self.broker.pools())
        return self.pools()

    def describe(self, loaded: Iterable[str] | None = None) -> list[str]:
        """One line per place models run: in-process, and each pool with its processes.

        ``loaded``: names of the models to list in-process (default: every one placed there).
        """
        lines = []
        local = sorted(self._in_process if loaded is None else set(loaded) & self._in_process)
        if local:
            lines.append(describe_pool(PoolChoice("server", "server", 0), local))
        for name, pool in self.pools():
            models = sorted({key.rsplit("#", 1)[0] for key in pool.model_keys()})
            zygote = isinstance(pool, ZygotePool)
            kind: PoolKind = "default" if name == "default" else "model"
            line = describe_pool(PoolChoice(kind, name, pool.size, zygote), models)
            lines.append(f"{line}  [PSS {pool_pss(pool) / 2**20:.1f} MiB]")
        return lines

    async def start(self) -> None:
        """Start the shared worker pool (before models load) if a model known now uses it."""
        if self.pool is not None and (
            not self._models or any(self._uses_default(m) for m in self._models)
        ):
            await self._start_default()

    def _uses_default(self, settings: ModelSettings) -> bool:
        if self.environment_pools is not None and has_environment(settings):
            return False
        return self.model_pools.choice(settings).kind == "default"

    async def _start_default(self, user: str = "") -> WorkerPool:
        assert self.pool is not None
        async with self._default_lock:
            if not self._default_started:
                await self.pool.start()
                self._default_started = True
        return self.pool

    async def close(self) -> None:
        """Stop every pool (after models have unloaded); a front-end closes its connections
        to the supervisor's workers."""
        if self.broker is not None:
            await self.broker.close()
        if self.pool is not None and self._default_started:
            await self.pool.close()
        await self.model_pools.close()
        if self.environment_pools is not None:
            await self.environment_pools.close()


async def _keep(user: str) -> None:
    """The default pool stays up when a model leaves it (it is the server's, not the model's)."""
