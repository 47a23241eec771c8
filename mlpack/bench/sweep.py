"""Run a list of load points against one target, one after another, with a live view."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .live import LiveView
from .loadgen import LoadProgress
from .measure import Point, Target, fetch_metadata, measure
from .payloads import generate_requests, read_jsonl, specs_from_metadata


@dataclass
class RequestSource:
    """Where request data comes from: a JSONL file, or generated from the model's metadata."""

    data: Path | None = None
    shapes: dict[str, tuple[int, ...]] | None = None

    async def requests(self, target: Target, rows: int) -> list[dict[str, Any]]:
        if self.data is not None:
            return read_jsonl(self.data)
        metadata = await fetch_metadata(target)
        return generate_requests(specs_from_metadata(metadata, self.shapes), rows)


def expand_points(
    transports: Sequence[str],
    concurrency: Sequence[int],
    rows: Sequence[int],
    rates: Sequence[float] = (),
    **common: Any,
) -> list[Point]:
    """The cross product transports x rows x (rates or concurrency levels)."""
    points = []
    for transport in transports:
        for r in rows:
            if rates:
                limit = max(concurrency) if concurrency else 64
                points += [Point(transport, limit, r, rate=rate, **common) for rate in rates]
            else:
                points += [Point(transport, c, r, **common) for c in concurrency]
    return points


async def run_points(
    target: Target,
    points: Sequence[Point],
    source: RequestSource,
    view: LiveView | None = None,
) -> list[dict[str, Any]]:
    """Measure each point in order; the request data is made once per rows value."""
    cache: dict[int, list[dict[str, Any]]] = {}
    results = []
    for point in points:
        if point.rows not in cache:
            cache[point.rows] = await source.requests(target, point.rows)
        progress = LoadProgress()
        if view is not None:
            view.start(point.label(), progress, point.requests or 0)
        result = await measure(target, point, cache[point.rows], progress)
        results.append(result)
        if view is not None:
            view.finish(result)
    return results
