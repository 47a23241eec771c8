"""The search behind ``mlpack tune``: line searches along each setting, then a halving re-measure.

Settings are ordered value lists (``max_batch_size: 1, 2, 4, …``), so the search walks
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
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, Optional, Sequence

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
    best: Optional[Trial]
    measurements: int


def grid_size(space: Mapping[str, Sequence[Any]]) -> int:
    return math.prod(len(values) for values in space.values())


def _config(space: Mapping[str, Sequence[Any]], index: dict[str, int]) -> Config:
    return tuple((name, space[name][index[name]]) for name in space)


async def coordinate_search(
    space: Mapping[str, Sequence[Any]],
    evaluate: Evaluate,
    slo_p99_ms: float,
    budget: int,
    start: Optional[dict[str, Any]] = None,
    tolerance: float = 0.03,
    objective: str = "throughput",
) -> SearchResult:
    """Search ``space`` with at most ``budget`` calls of ``evaluate``."""
    if budget < 1:
        raise ValueError("the budget must allow at least one measurement")
    trials: dict[Config, Trial] = {}
    used = 0

    async def score_of(index: dict[str, int]) -> Optional[float]:
        nonlocal used
        config = _config(space, index)
        if config not in trials:
            if used >= budget:
                return None
            used += 1
            trials[config] = Trial(config, [await evaluate(config, 0)])
        return trials[config].score(slo_p99_ms, objective)

    def better(new: Optional[float], old: float) -> bool:
        if new is None:
            return False
        return new > old + tolerance * abs(old) if old > 0 else new > old

    index = {name: len(values) // 2 for name, values in space.items()}
    for name, value in (start or {}).items():
        if name in space and value in space[name]:
            index[name] = list(space[name]).index(value)
    current = await score_of(index)
    assert current is not None
    moved = True
    while moved and used < budget:
        moved = False
        for name in sorted(space, key=lambda n: -len(space[n])):
            # Probe both neighbours, then walk on from the better one while it keeps improving
            # (a small noisy gain one way must not hide a large one the other way).
            probes = []
            for step in (1, -1):
                probe = dict(index)
                probe[name] += step
                if 0 <= probe[name] < len(space[name]):
                    score = await score_of(probe)
                    if better(score, current):
                        assert score is not None
                        probes.append((score, step, probe))
            if not probes:
                continue
            current, step, index = max(probes, key=lambda p: p[0])
            moved = True
            while 0 <= index[name] + step < len(space[name]):
                probe = dict(index)
                probe[name] += step
                score = await score_of(probe)
                if not better(score, current):
                    break
                assert score is not None
                index, current = probe, score
    # Last rung: re-measure the best third (at least the best two) while the budget lasts.
    ranked = sorted(trials.values(), key=lambda t: t.score(slo_p99_ms, objective), reverse=True)
    finalists = ranked[: max(2, math.ceil(len(ranked) / 3))]
    for trial in finalists:
        if used >= budget:
            break
        used += 1
        trial.measurements.append(await evaluate(trial.config, 1))
    ranked = sorted(trials.values(), key=lambda t: t.score(slo_p99_ms, objective), reverse=True)
    best = ranked[0] if ranked and ranked[0].feasible(slo_p99_ms) else None
    return SearchResult(ranked, best, used)


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
