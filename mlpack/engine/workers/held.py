"""Runners that hold a pool from load to unload, as a named user (``HeldPoolRunner``).

A model's own or group pool (``engine.pools.PooledRunner``: the pool is started for its
first user and stopped after its last) and a supervisor's shared pool
(``engine.workers.remote.SharedRunner``: the model is loaded once for every front-end and
unloaded after the last release) are both held this way: acquire, start, and on a failed
start or an unload, release. Each subclass says how it acquires, starts, stops and
releases; the order, the user's name and the clean-up after a failed start live here.
"""

from __future__ import annotations

import contextlib

from ...settings import ModelSettings
from ...types import MetadataModelResponse
from .pool import DeferredWorkerRunner, WorkerRunner


class HeldPoolRunner(DeferredWorkerRunner):
    """A ``ModelRunner`` on a pool it acquires at load and releases at unload.

    Parameters:
        settings: the model.
        concurrency: the pool's processes.
    """

    def __init__(self, settings: ModelSettings, concurrency: int) -> None:
        self.settings = settings
        self.concurrency = concurrency
        self._runner: WorkerRunner | None = None
        self._user = f"{settings.name}@{id(self):x}"  # this runner, to the pool's owner

    async def load(self) -> MetadataModelResponse:
        runner, metadata = await self._acquire()
        try:
            metadata = await self._start(runner, metadata)
        except BaseException:
            with contextlib.suppress(Exception):  # the start's error is the one to see
                await self._release(runner)
            raise
        self._runner = runner
        return metadata

    async def unload(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await self._stop(runner)
            await self._release(runner)

    async def _acquire(self) -> tuple[WorkerRunner, MetadataModelResponse | None]:
        """Hold the pool; the runner on it, and the model's metadata if already loaded."""
        raise NotImplementedError

    async def _start(
        self, runner: WorkerRunner, metadata: MetadataModelResponse | None
    ) -> MetadataModelResponse:
        """Make the model servable on ``runner``; its metadata."""
        raise NotImplementedError

    async def _stop(self, runner: WorkerRunner) -> None:
        """Undo ``_start`` before the release (nothing by default)."""

    async def _release(self, runner: WorkerRunner) -> None:
        """Let go of the pool (the owner may unload or stop what it holds for us)."""
        raise NotImplementedError
