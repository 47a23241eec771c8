"""``WorkerRunner``: a ``ModelRunner`` whose model lives in every process of a ``WorkerPool``."""

from __future__ import annotations

import itertools
from typing import Callable

from ...settings import ModelSettings
from ...types import InferenceRequest, InferenceResponse, MetadataModelResponse
from .pool import WorkerPool

_instances = itertools.count(1)


class WorkerRunner:
    """Runs one model instance in the pool's workers (each worker loads its own copy)."""

    def __init__(self, settings: ModelSettings, pool: WorkerPool) -> None:
        self.settings = settings
        self.pool = pool
        # Unique per runner, so a reload's new instance and the old one coexist in workers.
        self.key = f"{settings.name}#{next(_instances)}"

    @property
    def concurrency(self) -> int:
        return self.pool.size

    async def load(self) -> MetadataModelResponse:
        return await self.pool.load(self.key, self.settings)

    async def predict(self, request: InferenceRequest) -> InferenceResponse:
        return await self.pool.predict(self.key, request)

    async def unload(self) -> None:
        await self.pool.unload(self.key)


def worker_runner_factory(pool: WorkerPool) -> Callable[[ModelSettings], WorkerRunner]:
    """A registry ``runner_factory`` that runs every model in ``pool``."""

    def factory(settings: ModelSettings) -> WorkerRunner:
        return WorkerRunner(settings, pool)

    return factory
