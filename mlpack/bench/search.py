"""The search behind ``mlpack tune``: line searches along each setting, then a halving re-measure.

Settings are ordered value lists (``max_batch_size: 1, 2, 4, ...``), so the search walks
them instead of trying the whole grid: from a middle starting point it probes both
neighbours along one setting, walks on from the better one while the score improves by
more than ``tolerance``, passes over every setting until nothing moves, and
then spends what is left of the budget re-measuring the best third of what it saw
(successive halving's last rung) so one lucky measurement does not win. Every call of
``evaluate`` counts against ``budget``; results are cached, so no configuration is measured
twice by the walk.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Config = tuple[tuple[str, Any], ...]


@dataclass
class Measurement:
    """What one measurement of a configuration gave."""

    throughput: float  # rows per second
    p99_ms: float
    errors: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Trial:
    config: Config
    measurements: list[Measurement] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return sum(m.throughput for m in self.measurements) / len(self.measurements)

    @property
    def p99_ms(self) -> float:
        return sum(m.p99_ms for m in self.measurements) / len(self.measurements)

    @property
    def errors(self) -> int:
        return sum(m.errors for m in self.measurements)

    def feasible(self, slo_p99_ms: float) -> bool:
        return self.errors == 0 and self.p99_ms <= slo_p99_ms

    def score(self, slo_p99_ms: float, objective: str = "throughput") -> float:
        """Feasible trials rank by the objective; infeasible ones below, by how far off they are."""
        if not self.feasible(slo_p99_ms):
            over = self.p99_ms / slo_p99_ms if slo_p99_ms > 0 else math.inf
            return -over - (1.0 if self.errors else 0.0)
        if objective == "latency":
            return 1.0 / max(self.p99_ms, 1e-6)
        return self.throughput


Evaluate = Callable[[Config, int], Awaitable[Measurement]]  # (config, rung) → measurement


@dataclass
class SearchResult:
    trials: list[Trial]
    best: Trial | None
    measurements: int


def grid_size(space: Mapping[str, Sequence[Any]]) -> int:
    return math.prod(len(values) for values in space.values())


def _config(space: Mapping[str, Sequence[Any]], index: dict[str, int]) -> Config:
    return tuple((name, space[name][index[name]]) for name in space)


class _Walk:
    """The state of one search: measured trials, the budget spent, where the walk stands."""

    def __init__(
        self,
        space: Mapping[str, Sequence[Any]],
        evaluate: Evaluate,
        slo_p99_ms: float,
        budget: int,
        tolerance: float,
        objective: str,
    ) -> None:
        self.space, self.evaluate, self.budget = space, evaluate, budget
        self.slo, self.tolerance, self.objective = slo_p99_ms, tolerance, objective
        self.trials: dict[Config, Trial] = {}
        self.used = 0
        self.index: dict[str, int] = {}
        self.current = 0.0

    def score(self, trial: Trial) -> float:
        return trial.score(self.slo, self.objective)

    async def score_of(self, index: dict[str, int]) -> float | None:
        """The index's score, measuring it first if new (None: out of budget)."""
        config = _config(self.space, index)
        if config not in self.trials:
            if self.used >= self.budget:
                return None
            self.used += 1
            self.trials[config] = Trial(config, [await self.evaluate(config, 0)])
        return self.score(self.trials[config])

    def better(self, new: float | None, old: float) -> bool:
        if new is None:
            return False
        return new > old + self.tolerance * abs(old) if old > 0 else new > old

    async def neighbour(self, name: str, step: int) -> tuple[float, dict[str, int]] | None:
        """The neighbour ``step`` along ``name`` when it beats the current score."""
        probe = dict(self.index)
        probe[name] += step
        if not 0 <= probe[name] < len(self.space[name]):
            return None
        score = await self.score_of(probe)
        if score is None or not self.better(score, self.current):
            return None
        return score, probe

    async def line(self, name: str) -> bool:
        """Probe both neighbours along ``name``, then walk on from the better one while it
        keeps improving (a small noisy gain one way must not hide a large one the other
        way); return whether the walk moved."""
        found = []
        for step in (1, -1):
            hit = await self.neighbour(name, step)
            if hit is not None:
                found.append((hit[0], step, hit[1]))
        if not found:
            return False
        self.current, step, self.index = max(found, key=lambda f: f[0])
        while (hit := await self.neighbour(name, step)) is not None:
            self.current, self.index = hit
        return True

    async def finish(self) -> None:
        """Last rung: re-measure the best third (at least two) while the budget lasts."""
        ranked = sorted(self.trials.values(), key=self.score, reverse=True)
        for trial in ranked[: max(2, math.ceil(len(ranked) / 3))]:
            if self.used >= self.budget:
                break
            self.used += 1
            trial.measurements.append(await self.evaluate(trial.config, 1))


async def coordinate_search(
    space: Mapping[str, Sequence[Any]],
    evaluate: Evaluate,
    slo_p99_ms: float,
    budget: int,
    start: dict[str, Any] | None = None,
    tolerance: float = 0.03,
    objective: str = "throughput",
) -> SearchResult:
    """Search ``space`` with at most ``budget`` calls of ``evaluate``."""
    if budget < 1:
        raise ValueError("the budget must allow at least one measurement")
    walk = _Walk(space, evaluate, slo_p99_ms, budget, tolerance, objective)
    walk.index = {name: len(values) // 2 for name, values in space.items()}
    for name, value in (start or {}).items():
        if name in space and value in space[name]:
            walk.index[name] = list(space[name]).index(value)
    first = await walk.score_of(walk.index)
    assert first is not None
    walk.current = first
    moved = True
    while moved and walk.used < budget:
        moved = False
        for name in sorted(space, key=lambda n: -len(space[n])):
            moved = await walk.line(name) or moved
    await walk.finish()
    ranked = sorted(walk.trials.values(), key=walk.score, reverse=True)
    best = ranked[0] if ranked and ranked[0].feasible(slo_p99_ms) else None
    return SearchResult(ranked, best, walk.used)


def pareto(trials: Sequence[Trial]) -> list[Trial]:
    """Trials no other trial beats on both throughput (higher) and p99 (lower), errors excluded."""
    clean = [t for t in trials if t.errors == 0]
    front = [
        t
        for t in clean
        if not any(
            o is not t
            and o.throughput >= t.throughput
            and o.p99_ms <= t.p99_ms
            and (o.throughput > t.throughput or o.p99_ms < t.p99_ms)
            for o in clean
        )
    ]
    return sorted(front, key=lambda t: t.throughput)
