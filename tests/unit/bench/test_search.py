"""The tune search on synthetic landscapes: budget kept, best found, SLO respected."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest

from mlpack.bench.search import Config, Measurement, coordinate_search, grid_size, pareto

SPACE: dict[str, list[Any]] = {
    "max_batch_size": [1, 2, 4, 8, 16, 32, 64],
    "max_batch_time": [0.0, 0.001, 0.005, 0.02],
    "parallel_workers": [0, 1, 2],
}


def landscape(
    peak_batch: int, slo_cut: int | None = None, noise: float = 0.0, seed: int = 0
) -> Callable[[Config, int], Any]:
    """Throughput peaks at ``peak_batch``; p99 grows with the batch; workers help a little."""
    rng = random.Random(seed)

    async def evaluate(config: Config, rung: int) -> Measurement:
        c = dict(config)
        b = c["max_batch_size"]
        throughput = 1000.0 * min(b, peak_batch) / (1 + 0.5 * max(0, b - peak_batch))
        throughput *= 1 + 0.1 * c["parallel_workers"] - 2 * c["max_batch_time"]
        throughput *= 1 + noise * (rng.random() - 0.5)
        p99 = 2.0 * b + 100 * c["max_batch_time"]
        return Measurement(throughput, p99)

    return evaluate


def true_value(config: Config, peak: int, slo: float) -> float:
    c = dict(config)
    b = c["max_batch_size"]
    if 2.0 * b + 100 * c["max_batch_time"] > slo:
        return 0.0
    return (
        1000.0
        * min(b, peak)
        / (1 + 0.5 * max(0, b - peak))
        * (1 + 0.1 * c["parallel_workers"] - 2 * c["max_batch_time"])
    )


def best_in_grid(peak: int, slo: float) -> float:
    import itertools

    configs = [
        tuple(zip(SPACE, values, strict=True)) for values in itertools.product(*SPACE.values())
    ]
    return max(true_value(c, peak, slo) for c in configs)


@pytest.mark.parametrize("peak", [1, 4, 8, 64])
@pytest.mark.parametrize("noise", [0.0, 0.04])
def test_finds_the_peak_within_a_third_of_the_grid(peak: int, noise: float) -> None:
    budget = grid_size(SPACE) // 3
    found = asyncio.run(coordinate_search(SPACE, landscape(peak, noise=noise), 1000.0, budget))
    assert found.measurements <= budget
    assert found.best is not None
    assert true_value(found.best.config, peak, 1000.0) >= 0.9 * best_in_grid(peak, 1000.0)


def test_slo_rules_out_the_biggest_batches() -> None:
    slo = 20.0  # p99 = 2 * batch (+ wait): batches above 8 miss it
    found = asyncio.run(coordinate_search(SPACE, landscape(64), slo, grid_size(SPACE) // 3))
    assert found.best is not None and found.best.feasible(slo)
    assert dict(found.best.config)["max_batch_size"] == 8
    assert true_value(found.best.config, 64, slo) >= 0.9 * best_in_grid(64, slo)


def test_nothing_feasible_gives_no_recommendation() -> None:
    found = asyncio.run(coordinate_search(SPACE, landscape(4), 0.5, 10))
    assert found.best is None and found.trials[0].p99_ms > 0.5


def test_budget_of_one_and_pareto() -> None:
    found = asyncio.run(coordinate_search(SPACE, landscape(4), 1000.0, 1))
    assert found.measurements == 1 and len(found.trials) == 1
    found = asyncio.run(coordinate_search(SPACE, landscape(8), 1000.0, 20))
    front = pareto(found.trials)
    assert front and all(
        not (o.throughput > t.throughput and o.p99_ms < t.p99_ms)
        for t in front
        for o in found.trials
    )
    with pytest.raises(ValueError, match="budget"):
        asyncio.run(coordinate_search(SPACE, landscape(8), 1000.0, 0))


def test_a_small_gain_one_way_does_not_hide_a_large_one_the_other_way() -> None:
    # Seen on a busy machine: past the best batch size the rows/s drift up by a few % (noise);
    # the best (4) lies the other way from the start (8).
    rows_per_s = {1: 50.0, 2: 95.0, 4: 180.0, 8: 44.0, 16: 46.0, 32: 49.0}
    space: dict[str, list[Any]] = {"max_batch_size": [1, 2, 4, 8, 16, 32], "max_batch_time": [0, 1]}

    async def evaluate(config: Config, rung: int) -> Measurement:
        return Measurement(rows_per_s[dict(config)["max_batch_size"]], 10.0)

    found = asyncio.run(coordinate_search(space, evaluate, 1000.0, budget=4))
    assert found.best is not None and dict(found.best.config)["max_batch_size"] == 4
