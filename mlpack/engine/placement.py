"""Where a model runs: the one place that chooses a runner for each model.

A model with its own environment runs in a worker pool started with that
environment's Python (``workers.interpreters``); otherwise, with ``parallel_workers``
above 0, in the shared worker pool; otherwise on a thread of this process
(``LocalRunner``). A model with ``max_batch_size`` above 1 gets an adaptive batcher in
front of whichever runner that is. ``RunnerPlacement`` receives plain values (not the
server's settings) and owns the pools it starts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from ..environments.extract import ExtractionLimits
from ..settings import ModelSettings
from .batching import BatchingRunner
from .runner import LocalRunner, ModelRunner
from .workers.interpreters import EnvironmentPools, EnvironmentRunner, has_environment
from .workers.pool import DEFAULT_POOL_LIMITS, PoolLimits, WorkerPool, WorkerRunner

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
    """

    def __init__(
        self,
        parallel_workers: int = 0,
        workers_timeout: float = 5.0,
        environments_dir: Path | None = None,
        limits: PoolLimits = DEFAULT_POOL_LIMITS,
        extraction_limits: ExtractionLimits | None = None,
        build_environments: bool = True,
    ) -> None:
        self.pool: WorkerPool | None = None
        if parallel_workers > 0:
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
        runner = self._base_runner(settings)
        if settings.max_batch_size > 1:
            return BatchingRunner(
                runner, settings.max_batch_size, settings.max_batch_time, settings.max_queue_size
            )
        return runner

    def _base_runner(self, settings: ModelSettings) -> ModelRunner:
        if self.environment_pools is not None and has_environment(settings):
            return EnvironmentRunner(settings, self.environment_pools)
        logger.info("model '%s' uses the server's environment", settings.name)
        if self.pool is not None:
            return WorkerRunner(settings, self.pool)
        return LocalRunner(settings)

    async def start(self) -> None:
        """Start the shared worker pool (before models load)."""
        if self.pool is not None:
            await self.pool.start()

    async def close(self) -> None:
        """Stop every pool (after models have unloaded)."""
        if self.pool is not None:
            await self.pool.close()
        if self.environment_pools is not None:
            await self.environment_pools.close()
