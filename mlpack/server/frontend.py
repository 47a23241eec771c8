"""A front-end's side of its control link: repository calls go everywhere, metrics go up.

The repository API's load/unload (``ModelRegistry.request_load``) is sent to the
supervisor, which applies it in every front-end (this one included, through ``handle``)
and answers once all have; so any front-end's index then shows it. A scrape of the
supervisor's metrics port collects each front-end's in-memory families (``snapshot``)
with its statistics and dashboard buckets (kept should it die:
``server/frontend_figures.py``), and a front-end's ``/stats`` asks every front-end for its
own figures (``Ask``, answered by ``answer``; ``server/frontend_stats.py``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from ..engine.registry import ModelRegistry
from .frontend_figures import FiguresQuery
from .frontend_link import (
    Answer,
    Apply,
    Ask,
    Collect,
    ControlLink,
    Done,
    FamilySnapshot,
    FrontendRole,
    PoolWorkers,
    Ready,
    Snapshot,
    as_error,
)
from .frontend_pools import FrontendPools, repository_generation

logger = logging.getLogger("mlpack.server")


class FrontendPeer:
    """One front-end's end of the link to its supervisor (a ``RepositoryCoordinator``).

    Parameters:
        role: index, control socket and the repository calls to replay.
        registry: this front-end's model registry.
        collectors: what a scrape collects here (in-memory families, autoscaling gauges).
        shared_pools: this front-end's view of the supervisor's worker pools.
        answer: this front-end's own answer to an ``Ask`` query (statistics, dashboard).
    """

    def __init__(
        self,
        role: FrontendRole,
        registry: ModelRegistry,
        collectors: Iterable[Any],
        answer: Callable[[Any], Any] | None = None,
        shared_pools: FrontendPools | None = None,
    ) -> None:
        self.role = role
        self.registry = registry
        self.collectors = list(collectors)
        self.answer = answer
        self.shared_pools = shared_pools
        self.link = ControlLink(handler=self.handle, on_message=self._on_message)
        if shared_pools is not None:
            shared_pools.link = self.link
        # Set once startup models are loaded and ``role.ops`` replayed: calls from the
        # supervisor wait for it, so they apply after the replay, in order.
        self.loaded = asyncio.Event()

    async def open(self) -> asyncio.Task[None]:
        """Connect the link and route repository calls through it; the reading task."""
        await self.link.open(self.role.control)
        self.registry.coordinator = self
        return asyncio.create_task(self.link.run())

    async def apply(self, action: str, name: str) -> None:
        """The repository API's load/unload: applied by every front-end before it returns."""
        answer = await self.link.call(Apply(self.link.next_id(), action, name))
        if answer.error is not None:
            raise answer.error

    def _on_message(self, message: Any) -> None:
        if isinstance(message, PoolWorkers) and self.shared_pools is not None:
            self.shared_pools.on_workers(message)

    def decided(self) -> set[str]:
        """Models the repository calls made before this front-end started decide: their
        startup load is skipped and ``replay`` leaves them as the last call did (loaded
        from disk under its generation, or unloaded), so a replacement never serves a
        model its peers unloaded, nor loads a reloaded one twice."""
        return {name for _, name, _ in self.role.ops}

    async def replay(self) -> None:
        """Apply the calls made before this front-end started (the last one per model, in
        order), after the startup models that no call decides (``decided``)."""
        for action, name, generation in self.role.ops:
            try:
                await self._local(action, name, generation)
            except Exception as error:
                logger.warning("replaying %s of model '%s': %s", action, name, error)
        self.loaded.set()

    def announce(self) -> None:
        """Tell the supervisor this front-end serves (models loaded, ports open)."""
        self.link.send(Ready(self.role.index, os.getpid()))

    async def handle(self, message: Apply | Collect | Ask) -> Done | Snapshot | Answer:
        if isinstance(message, Collect):
            figures = self.answer(FiguresQuery(message.since)) if self.answer else None
            return Snapshot(message.call_id, self.snapshot(), figures)
        if isinstance(message, Ask):
            value = self.answer(message.query) if self.answer is not None else None
            return Answer(message.call_id, value)
        await self.loaded.wait()
        try:
            await self._local(message.action, message.name, message.generation)
        except Exception as error:
            return Done(message.call_id, as_error(error))
        return Done(message.call_id)

    async def _local(self, action: str, name: str, generation: int) -> None:
        token = repository_generation.set(generation)  # shared pools load it once
        try:
            if action == "load":
                await self.registry.load(name)
            else:
                await self.registry.unload(name)
        finally:
            repository_generation.reset(token)

    def snapshot(self) -> list[FamilySnapshot]:
        """Every in-memory metric family here, as plain values."""
        families: list[FamilySnapshot] = []
        for collector in self.collectors:
            for family in collector.collect():
                samples = [(s.name, dict(s.labels), float(s.value)) for s in family.samples]
                families.append((family.name, family.documentation, family.type, samples))
        return families
