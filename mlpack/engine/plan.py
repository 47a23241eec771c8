"""What a set of models will cost before serving them: processes, models per process, memory.

``measure_models`` loads every model once in a scratch zygote (the server's Python) and
records how much resident memory each added; ``estimate`` turns the pools the settings
ask for (``engine.pools.plan_pools``) and those sizes into a memory figure per pool:

* in the server process: the models' sizes;
* a pool forked from a zygote: one copy of its models (shared) plus one bare process per
  worker and one for the zygote (an upper bound: forked workers share most of a bare
  process's pages with the zygote too);
* any other pool: each worker holds its own copy of every model it serves.

Models with their own environment are not measured (they need their own Python).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from ..settings import ModelSettings
from .pools import PlannedPool, plan_pools, start_zygote_process
from .workers.interpreters import has_environment
from .workers.memory import uss_bytes
from .workers.zygote import Zygote

logger = logging.getLogger("mlpack.engine")


@dataclass(frozen=True)
class Measured:
    """A bare worker process's own memory (USS: shared libraries not counted), and each
    model's size (None: not measured)."""

    process: int
    models: dict[str, int | None]
    problems: dict[str, str]


@dataclass(frozen=True)
class PoolEstimate:
    pool: PlannedPool
    memory: int | None  # bytes (None: a model in it was not measured)
    unmeasured: list[str]


async def measure_models(models: Iterable[ModelSettings], timeout: float = 60.0) -> Measured:
    """Load each model once in a scratch zygote; the bytes each one added."""
    zygote = Zygote(start_zygote_process, timeout)
    await zygote.start()
    sizes: dict[str, int | None] = {}
    problems: dict[str, str] = {}
    try:
        process = uss_bytes(zygote.pid) if zygote.pid is not None else 0
        for index, model in enumerate(models):
            if has_environment(model):
                sizes[model.name] = None
                problems[model.name] = "own environment: not measured"
                continue
            try:
                loaded = await zygote.load(f"{model.name}#plan{index}", model)
            except Exception as error:  # the plan reports it; serving would fail the same way
                sizes[model.name] = None
                problems[model.name] = f"failed to load: {error}"
                continue
            sizes[model.name] = loaded.size
    finally:
        await zygote.close()
    return Measured(process, sizes, problems)


def estimate(
    models: Iterable[ModelSettings], default_workers: int, measured: Measured
) -> list[PoolEstimate]:
    """Each pool the settings ask for, with an estimate of its memory."""
    estimates = []
    for pool in plan_pools(models, default_workers):
        sizes = [measured.models.get(name) for name in pool.models]
        unmeasured = [name for name, size in zip(pool.models, sizes, strict=True) if size is None]
        known = sum(size for size in sizes if size is not None)
        choice = pool.choice
        if choice.kind == "server":
            memory = known
        elif choice.zygote:
            memory = known + (choice.size + 1) * measured.process
        else:
            memory = choice.size * (known + measured.process)
        estimates.append(PoolEstimate(pool, None if unmeasured else memory, unmeasured))
    return estimates
