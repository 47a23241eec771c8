"""A front-end's shared worker pools: the supervisor loads, the front-end dispatches.

``FrontendPools`` is the ``PoolBroker`` of a front-end among several: a pooled model's
runner asks the supervisor (over the control link) to load it into the pool it belongs
to, and calls the pool's workers over this front-end's own connections (``RemotePool``,
kept up to date by the supervisor's ``PoolWorkers`` announcements).

Which load is "the same" across front-ends is told by a generation: 0 for the models
found at startup, the supervisor's number of the repository call otherwise (set around
the call by ``FrontendPeer``: ``repository_generation``). A replacement front-end loads a
model the API has loaded meanwhile by replaying that call, under its generation, so it
joins what the pool already holds instead of loading it again (and it does not load a
startup model the API has unloaded or reloaded since: ``FrontendPeer.decided``).
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import os

from ..engine.workers.pool import PoolLimits
from ..engine.workers.remote import RemotePool, SharedModel
from ..errors import MLPackError
from ..settings import ModelSettings
from .frontend_link import ControlLink, PoolAcquire, PoolAnswer, PoolRelease, PoolWorkers

# The generation of the repository call being applied (None: a startup load).
repository_generation: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "repository_generation", default=None
)


class FrontendPools:
    """The shared pools as one front-end sees them (a ``PoolBroker``).

    Parameters:
        limits: this front-end's per-worker depth and queue bound for shared workers.
    """

    def __init__(self, limits: PoolLimits) -> None:
        self.limits = limits
        self.link: ControlLink | None = None  # set when the front-end joins its supervisor
        self._pools: dict[str, RemotePool] = {}

    def pool(self, name: str) -> RemotePool:
        pool = self._pools.get(name)
        if pool is None:
            pool = self._pools[name] = RemotePool(
                name,
                0,
                max_in_flight=self.limits.max_in_flight,
                max_queue_size=self.limits.max_queue_size,
            )
        return pool

    def pools(self) -> list[tuple[str, RemotePool]]:
        return list(self._pools.items())

    def on_workers(self, message: PoolWorkers) -> None:
        """The supervisor's announcement of a pool's workers and models."""
        self.pool(message.pool).update(message.size, message.models, message.workers)

    async def acquire(self, settings: ModelSettings, user: str) -> SharedModel:
        generation = repository_generation.get()
        if generation is None:  # a startup load
            generation = 0
        answer = await self._call(PoolAcquire(0, os.getpid(), user, settings, generation))
        assert answer.metadata is not None
        return SharedModel(answer.pool, answer.key, answer.metadata)

    async def release(self, key: str, user: str) -> None:
        await self._call(PoolRelease(0, os.getpid(), user, key))

    async def _call(self, message: PoolAcquire | PoolRelease) -> PoolAnswer:
        link = self.link
        if link is None:
            raise MLPackError("this front-end has no link to its supervisor")
        numbered = dataclasses.replace(message, call_id=link.next_id())  # the link's own id
        try:
            answer: PoolAnswer = await link.call(numbered)
        except ConnectionError:
            raise MLPackError("the supervisor is gone (the server is stopping)") from None
        if answer.error is not None:
            raise answer.error
        return answer

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        await asyncio.gather(*(pool.close() for pool in pools), return_exceptions=True)
