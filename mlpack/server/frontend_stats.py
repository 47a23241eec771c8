"""Statistics and dashboard data across front-ends (``--frontends N``).

A front-end answering ``/v2/models/{m}/stats`` or ``/v2/dashboard/data.json`` sends the
query to the supervisor (``Gather``), which asks every live front-end (``Ask``; each
answers from its own recorders) and returns the answers that came within
``frontend_gather_timeout`` (2 s by default) — a busy or dying front-end is left out and
named in ``missing``; the asking front-end waits ``frontend_gather_total_timeout`` (5 s)
for that answer, then answers with its own figures alone. It merges what came back:

* statistics: counts and durations add (Triton's shape: a count and total nanoseconds per
  phase, per batch size); ``last_inference`` is the latest.
* dashboard: per-second buckets of the same model version and second add up; the latency
  reservoirs merge weighted by how many latencies each front-end saw in that second, so
  the p50/p99 are those of the pooled latencies (not an average of percentiles).

Front-ends that died cannot be asked: the supervisor adds their last collected figures
(``Gathered.retained``, ``server/frontend_figures.py``), so totals do not go back.

With one front-end none of this runs.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..engine.stats import ModelStats, StatsRecorder, _Duration
from .dashboard import SAMPLES_PER_SECOND, DashboardRecorder, _Bucket
from .frontend_link import Answer, Ask, ControlLink, Gather, Gathered

# Latency samples one front-end sends for the dashboard (a bound on the control message:
# 256 model versions x 300 s x 200 samples would be far too many); above it, each bucket's
# reservoir is thinned evenly (its ``seen`` count stays, so merging stays weighted right).
MAX_DASHBOARD_SAMPLES = 200_000


@dataclass(frozen=True)
class StatsQuery:
    """One model's statistics, per version (None: the unversioned entry)."""

    name: str
    versions: tuple[str | None, ...]


@dataclass(frozen=True)
class DashboardQuery:
    """The dashboard's raw buckets over the last ``window`` seconds."""

    window: int


@dataclass
class DashboardPart:
    """One front-end's dashboard buckets (``DashboardRecorder.buckets``)."""

    now: int
    workers: int
    series: dict[tuple[str, str], list[_Bucket]] = field(default_factory=dict)


def answer_locally(
    query: Any, stats: StatsRecorder, dashboard: DashboardRecorder | None
) -> list[ModelStats] | DashboardPart | None:
    """A front-end's own answer to ``query`` (from its recorders)."""
    if isinstance(query, StatsQuery):
        return [stats.get(query.name, version) for version in query.versions]
    if isinstance(query, DashboardQuery) and dashboard is not None:
        now, copies = dashboard.buckets(query.window)
        _thin(copies, MAX_DASHBOARD_SAMPLES)
        return DashboardPart(now, dashboard.workers, copies)
    return None


def _thin(series: dict[tuple[str, str], list[_Bucket]], budget: int) -> None:
    """Keep at most ``budget`` latency samples over all buckets (a uniform subsample each)."""
    buckets = [bucket for kept in series.values() for bucket in kept]
    if sum(len(bucket.latencies) for bucket in buckets) <= budget:
        return
    each = max(1, budget // len(buckets))
    chooser = random.Random(0)
    for bucket in buckets:
        if len(bucket.latencies) > each:
            bucket.latencies = chooser.sample(bucket.latencies, each)


async def gather(
    message: Gather, live: Sequence[tuple[int, ControlLink]], timeout: float
) -> Gathered:
    """Supervisor: ask every live front-end ``message.query``; what came back within
    ``timeout`` seconds of each."""

    async def one(index: int, link: ControlLink) -> tuple[int, Any] | None:
        try:
            async with asyncio.timeout(timeout):
                answer: Answer = await link.call(Ask(link.next_id(), message.query))
        except (ConnectionError, TimeoutError):
            return None
        return index, answer.value

    answers = await asyncio.gather(*(one(index, link) for index, link in live))
    values = [answer for answer in answers if answer is not None]
    answered = {index for index, _ in values}
    missing = [index for index, _ in live if index not in answered]
    return Gathered(message.call_id, values, missing)


def merge_stats(parts: Iterable[ModelStats]) -> ModelStats:
    """One model version's statistics summed over front-ends."""
    parts = list(parts)
    total = ModelStats(parts[0].name, parts[0].version)
    durations = (
        "success",
        "fail",
        "queue",
        "compute_infer",
        "stream_success",
        "stream_fail",
        "stream_first_chunk",
    )
    for part in parts:
        total.last_inference = max(total.last_inference, part.last_inference)
        total.inference_count += part.inference_count
        total.execution_count += part.execution_count
        total.stream_chunks += part.stream_chunks
        for name in durations:
            _add_duration(getattr(total, name), getattr(part, name))
        for size, duration in part.batches.items():
            _add_duration(total.batches.setdefault(size, _Duration()), duration)
    return total


def _add_duration(total: _Duration, part: _Duration) -> None:
    total.count += part.count
    total.ns += part.ns


def merge_dashboard(parts: Sequence[DashboardPart], seed: int = 0) -> DashboardPart:
    """Dashboard buckets summed over front-ends (same model version, same second)."""
    chooser = random.Random(seed)
    merged: dict[tuple[str, str], dict[int, _Bucket]] = {}
    for part in parts:
        for key, buckets in part.series.items():
            seconds = merged.setdefault(key, {})
            for bucket in buckets:
                total = seconds.get(bucket.second)
                if total is None:
                    seconds[bucket.second] = total = _Bucket(bucket.second)
                _add_bucket(total, bucket, chooser)
    return DashboardPart(
        now=max((part.now for part in parts), default=0),
        workers=sum(part.workers for part in parts),
        series={key: [b for _, b in sorted(seconds.items())] for key, seconds in merged.items()},
    )


def _add_bucket(total: _Bucket, part: _Bucket, chooser: random.Random) -> None:
    total.requests += part.requests
    total.errors += part.errors
    total.executions += part.executions
    total.batched_requests += part.batched_requests
    total.busy_s += part.busy_s
    total.queue_max = max(total.queue_max, part.queue_max)
    total.latencies = merge_reservoirs(
        (total.latencies, total.seen), (part.latencies, part.seen), SAMPLES_PER_SECOND, chooser
    )
    total.seen += part.seen


def merge_reservoirs(
    left: tuple[list[float], int],
    right: tuple[list[float], int],
    size: int,
    chooser: random.Random,
) -> list[float]:
    """At most ``size`` values from two uniform samples, each given with how many values it
    was drawn from: each side contributes in proportion to the values it saw, so the
    merged sample stands for the pooled values (both whole when they fit)."""
    (a, seen_a), (b, seen_b) = left, right
    keep = min(size, len(a) + len(b))
    if keep == 0:
        return []
    share = round(keep * seen_a / max(1, seen_a + seen_b))
    from_a = max(keep - len(b), min(len(a), share))
    return chooser.sample(a, from_a) + chooser.sample(b, keep - from_a)


class AcrossFrontends:
    """One front-end's way to the figures of all of them (over its control link).

    Parameters:
        link: the front-end's control link to the supervisor.
        index: this front-end's number (named in the note when it answers alone).
        timeout: seconds to wait for the supervisor's answer (then: this one's figures).
    """

    def __init__(self, link: ControlLink, index: int, timeout: float = 5.0) -> None:
        self.link = link
        self.index = index
        self.timeout = timeout

    async def _ask(self, query: Any) -> Gathered | None:
        link = self.link
        try:
            async with asyncio.timeout(self.timeout):
                gathered: Gathered = await link.call(Gather(link.next_id(), query))
        except (ConnectionError, TimeoutError):
            return None  # the supervisor is gone or stuck: this front-end's own figures
        return gathered

    def _note(self, gathered: Gathered | None, used: list[int]) -> dict[str, Any]:
        """Who answered (``frontend``), which front-ends the figures cover, ``retired``:
        front-end processes that died, whose last collected figures are included, and
        ``complete``: false when one was left out (or the supervisor did not answer)."""
        missing = gathered.missing if gathered is not None else []
        return {
            "frontend": self.index,
            "answered": sorted(used),
            "missing": sorted(missing),
            "retired": gathered.retired if gathered is not None else 0,
            "complete": gathered is not None and not missing,
        }

    async def _values(
        self, query: Any, fits: Callable[[Any], bool]
    ) -> tuple[list[Any], dict[str, Any]] | None:
        """Every front-end's answer to ``query`` that ``fits``, plus the dead front-ends'
        retained figures when they fit too, and the note; None when nothing came back."""
        gathered = await self._ask(query)
        if gathered is None:
            return None
        parts = [(index, value) for index, value in gathered.values if fits(value)]
        if not parts:
            return None
        values = [value for _, value in parts]
        if fits(gathered.retained):
            values.append(gathered.retained)
        return values, self._note(gathered, [index for index, _ in parts])

    async def stats(
        self, query: StatsQuery, local: list[ModelStats]
    ) -> tuple[list[ModelStats], dict[str, Any]]:
        """``local`` (this front-end's stats of ``query``) summed with every other's, and
        with what the front-ends that died had counted."""
        found = await self._values(
            query, lambda value: isinstance(value, list) and len(value) == len(local)
        )
        if found is None:
            return local, self._note(None, [self.index])
        values, note = found
        return [merge_stats(column) for column in zip(*values, strict=True)], note

    async def dashboard(
        self, window: int, local: DashboardPart
    ) -> tuple[DashboardPart, dict[str, Any]]:
        """``local`` (this front-end's dashboard buckets) merged with every other's."""
        found = await self._values(
            DashboardQuery(window), lambda value: isinstance(value, DashboardPart)
        )
        if found is None:
            return local, self._note(None, [self.index])
        values, note = found
        return merge_dashboard(values), note
