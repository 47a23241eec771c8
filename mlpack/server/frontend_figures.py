"""A front-end's statistics and dashboard figures, as the supervisor last knew them.

``/stats`` and the dashboard's data are answered by asking the live front-ends
(``server/frontend_stats.py``); a front-end that died cannot be asked. So the supervisor
also fetches each front-end's figures with its metrics (``Collect``: at each scrape and
every ``frontend_collect_interval`` seconds) and keeps them (``KeptFigures``): every
model version's statistics (replaced by each answer) and the dashboard buckets of the
seconds since the previous answer (each answer repeats the last second it sent, which was
still filling). When a front-end dies, its kept figures are folded into a retained base
(``KeptFigures.add``: counts and times add up, buckets of the same second merge like
front-ends' do), which the supervisor adds to every later answer (``Gathered.retained``),
so the totals do not go back, as the summed counters on the metrics port do not. What a
front-end counted after its last collect is lost with it. Buckets older than the
dashboard's window are dropped, and each copy holds at most ``MAX_DASHBOARD_SAMPLES``
latency samples (thinned evenly, each bucket's ``seen`` kept).
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ..engine.stats import ModelStats, StatsRecorder
from .dashboard import WINDOW_S, DashboardRecorder, _Bucket, window_start
from .frontend_stats import (
    MAX_DASHBOARD_SAMPLES,
    DashboardPart,
    DashboardQuery,
    StatsQuery,
    _add_bucket,
    _thin,
    merge_stats,
)

_Key = tuple[str, str]  # model name, version ("" for none)


@dataclass(frozen=True)
class FiguresQuery:
    """Supervisor → front-end (with ``Collect``): every model version's statistics and the
    dashboard buckets from second ``since`` on (0: the whole window)."""

    since: int = 0


@dataclass
class Figures:
    """A front-end's answer to ``FiguresQuery``."""

    stats: list[ModelStats]
    dashboard: DashboardPart | None = None


def answer_figures(
    query: FiguresQuery, stats: StatsRecorder, dashboard: DashboardRecorder | None
) -> Figures:
    """A front-end's own figures for the supervisor to keep."""
    part = None
    if dashboard is not None:
        # One second more than asked: the clock may tick before ``buckets`` reads it.
        now, copies = dashboard.buckets(max(1, int(time.time()) - query.since + 2))
        _thin(copies, MAX_DASHBOARD_SAMPLES)
        part = DashboardPart(now, dashboard.workers, copies)
    return Figures(stats.all(), part)


class KeptFigures:
    """Statistics and dashboard buckets last known of one front-end (``update``), or of
    the front-ends that died, summed (``add``).

    Parameters:
        clock: seconds since the epoch (the dashboard's clock), for the window.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.stats: dict[_Key, ModelStats] = {}
        self.buckets: dict[_Key, dict[int, _Bucket]] = {}
        self.since = 0  # the next ``FiguresQuery`` asks from this second
        self.retired = 0  # front-ends folded in by ``add``

    def update(self, figures: Figures) -> None:
        """A live front-end's answer: its statistics replace the kept ones; its buckets
        replace those of the same seconds."""
        self.stats = {(s.name, s.version): s for s in figures.stats}
        part = figures.dashboard
        if part is not None:
            for key, buckets in part.series.items():
                seconds = self.buckets.setdefault(key, {})
                for bucket in buckets:
                    seconds[bucket.second] = bucket
            self.since = part.now
        self._prune()

    def add(self, other: KeptFigures) -> None:
        """Fold in a dead front-end's last figures (counts add; buckets merge by second)."""
        for key, stats in other.stats.items():
            total = self.stats.get(key)
            self.stats[key] = stats if total is None else merge_stats([total, stats])
        chooser = random.Random(0)
        for key, seconds in other.buckets.items():
            mine = self.buckets.setdefault(key, {})
            for second, bucket in seconds.items():
                total_bucket = mine.get(second)
                if total_bucket is None:
                    mine[second] = bucket
                else:
                    _add_bucket(total_bucket, bucket, chooser)
        self.retired += 1
        self._prune()

    def answer(self, query: Any) -> list[ModelStats] | DashboardPart | None:
        """What the kept figures add to ``query``'s answer (None: nothing)."""
        if not self.retired:
            return None
        if isinstance(query, StatsQuery):
            return [
                copy.deepcopy(
                    self.stats.get((query.name, v or ""), ModelStats(query.name, v or ""))
                )
                for v in query.versions
            ]
        if isinstance(query, DashboardQuery):
            self._prune()
            start = window_start(int(self._clock()), query.window)
            series = {
                key: [
                    replace(bucket, latencies=list(bucket.latencies))
                    for second, bucket in sorted(seconds.items())
                    if second >= start
                ]
                for key, seconds in self.buckets.items()
            }
            return DashboardPart(0, 0, {key: kept for key, kept in series.items() if kept})
        return None

    def _prune(self) -> None:
        """Drop buckets out of the window; thin latency samples beyond the bound."""
        oldest = int(self._clock()) - WINDOW_S
        for key in list(self.buckets):
            seconds = self.buckets[key]
            for second in [s for s in seconds if s <= oldest]:
                del seconds[second]
            if not seconds:
                del self.buckets[key]
        _thin({key: list(s.values()) for key, s in self.buckets.items()}, MAX_DASHBOARD_SAMPLES)
