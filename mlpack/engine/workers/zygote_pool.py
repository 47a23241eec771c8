"""A ``WorkerPool`` whose workers are forked from a zygote that loaded the models once.

Loading a model loads it into the zygote, then rolls the workers one at a time: a new
worker is forked (it has every model the zygote has, the new one included) before an
old one stops taking requests, so the pool never has fewer live workers than its size
and a reload has no gap. A worker that dies is forked again from the zygote; a zygote
that dies is started again (and loads the models again) while the workers keep serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

from ...errors import WorkerError
from ...settings import ModelSettings
from ...types import MetadataModelResponse
from .pool import WorkerPool
from .zygote import Zygote, ZygoteStarter

logger = logging.getLogger("mlpack.workers")


class ZygotePool(WorkerPool):
    """N workers forked from one zygote (``WorkerPool``'s parameters, plus ``start_zygote``).

    Parameters:
        size: number of worker processes.
        start_zygote: starts ``run_zygote`` on a socket, returning a process handle.
        kwargs: the rest of ``WorkerPool``'s parameters.
    """

    def __init__(self, size: int, start_zygote: ZygoteStarter, **kwargs: Any) -> None:
        super().__init__(size, **kwargs)
        self.zygote = Zygote(start_zygote, self.start_timeout)
        self._loading = asyncio.Lock()
        self._restarting = asyncio.Lock()

    async def start(self) -> None:
        """Start the zygote; workers are forked when the first model has loaded."""
        await self.zygote.start()
        if self.ping_interval > 0:
            self._background(self._watch())
            self._background(self._watch_zygote())

    async def _start_worker_process(self, child_end: socket.socket, worker_id: int) -> Any:
        if not self.zygote.alive():
            await self._restart_zygote()
        return await self.zygote.fork(child_end, worker_id)

    # -- models -------------------------------------------------------------------------
    async def load(self, key: str, settings: ModelSettings) -> MetadataModelResponse:
        """Load into the zygote, then fork the workers afresh one at a time."""
        async with self._loading:
            loaded = await self.zygote.load(key, settings)
            self._models[key] = settings
            try:
                if not self._workers:
                    await asyncio.gather(*(self._spawn(next(self._ids)) for _ in range(self.size)))
                else:
                    await self._roll()
            except BaseException:
                self._models.pop(key, None)
                with contextlib.suppress(Exception):
                    await self.zygote.unload(key)
                raise
            for worker in self.workers:
                worker.models.add(key)
            self._changed()
        logger.info(
            "model '%s' loaded once in the zygote (%.1f MiB) and shared by %d worker(s)",
            key.rsplit("#", 1)[0],
            loaded.size / 2**20,
            len(self._workers),
        )
        await self._notify()
        return loaded.metadata

    async def unload(self, key: str) -> None:
        await super().unload(key)
        with contextlib.suppress(WorkerError, OSError):
            await self.zygote.unload(key)  # later forks do not carry it

    async def _roll(self) -> None:
        """Replace each worker by a fresh fork: the new one serves before the old one stops."""
        for old in list(self._workers.values()):
            if self._stopping:
                return
            await self._spawn(next(self._ids))
            old.retiring = True
            if self._workers.get(old.worker_id) is old:
                del self._workers[old.worker_id]  # from here on it is no longer replaced
            self._changed()
            self._background(self._retire(old))

    # -- the zygote's own health ------------------------------------------------------------
    async def _watch_zygote(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.ping_interval)
            if self._stopping:
                return
            if not self.zygote.alive() or not await self.zygote.ping():
                await self._restart_zygote()

    async def _restart_zygote(self) -> None:
        """Start a new zygote with the pool's models; workers keep serving meanwhile."""
        async with self._restarting:
            await self._restart_zygote_locked()

    async def _restart_zygote_locked(self) -> None:
        delay = 0.5
        while not self._stopping:
            if self.zygote.alive():
                return
            logger.error("the pool's zygote died; starting a new one (workers keep serving)")
            try:
                await self.zygote.restart(list(self._models.items()))
                return
            except Exception as error:
                self.failed_starts += 1
                logger.error(
                    "starting a new zygote failed (%s); next attempt in %.1fs", error, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_restart_backoff)

    # -- figures ------------------------------------------------------------------------------
    def model_sizes(self) -> dict[str, int]:
        """Bytes each model added to the zygote when it loaded, by model key."""
        return dict(self.zygote.sizes)

    async def close(self) -> None:
        await super().close()
        await self.zygote.close(self.stop_timeout)
