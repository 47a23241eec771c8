"""The supervisor keeps each front-end's statistics and dashboard figures, and a dead
one's last figures stay in every later answer (``server/frontend_figures.py``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError

from mlpack.engine.stats import InferEvent, InferTiming, ModelStats, StatsRecorder
from mlpack.server.dashboard import WINDOW_S, DashboardRecorder, _Bucket
from mlpack.server.frontend_figures import Figures, FiguresQuery, KeptFigures, answer_figures
from mlpack.server.frontend_link import Gather, Gathered, Snapshot
from mlpack.server.frontend_stats import (
    AcrossFrontends,
    DashboardPart,
    DashboardQuery,
    StatsQuery,
)
from mlpack.settings import Settings
from tests.helpers.links import linked_pair

NOW = 1_000_000


class _Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _event(ok: bool = True) -> InferEvent:
    return InferEvent("m", "", ok, 0.01, InferTiming(queue_wait=0.001, batch_size=1))


def _figures(count: int, seconds: dict[int, int], now: int = NOW) -> Figures:
    """``count`` inferences of model m, and ``seconds``: {second: requests} buckets."""
    buckets = [_Bucket(s, requests=n, latencies=[1.0] * n, seen=n) for s, n in seconds.items()]
    return Figures(
        [ModelStats("m", "", inference_count=count)],
        DashboardPart(now, 1, {("m", ""): buckets}),
    )


def test_update_replaces_stats_and_the_seconds_it_repeats() -> None:
    kept = KeptFigures(_Clock())
    kept.update(_figures(3, {NOW - 1: 2, NOW: 1}))
    assert kept.since == NOW
    kept.update(_figures(5, {NOW: 3}))  # the second that was still filling, now full
    assert kept.stats[("m", "")].inference_count == 5
    assert {s: b.requests for s, b in kept.buckets[("m", "")].items()} == {NOW - 1: 2, NOW: 3}


def test_retired_figures_add_up_and_answer_queries() -> None:
    clock = _Clock()
    retained = KeptFigures(clock)
    assert retained.answer(StatsQuery("m", ("",))) is None  # nobody died: nothing to add
    for count, seconds in ((3, {NOW - 1: 2, NOW: 1}), (4, {NOW: 4})):
        one = KeptFigures(clock)
        one.update(_figures(count, seconds))
        retained.add(one)
    assert retained.retired == 2
    stats = retained.answer(StatsQuery("m", ("", "v9")))
    assert isinstance(stats, list)
    assert [s.inference_count for s in stats] == [7, 0]
    part = retained.answer(DashboardQuery(1))
    assert isinstance(part, DashboardPart) and part.workers == 0
    (bucket,) = part.series[("m", "")]  # the window: the last second only
    assert (bucket.second, bucket.requests, bucket.seen, len(bucket.latencies)) == (NOW, 5, 5, 5)
    assert retained.answer(object()) is None
    # Buckets leave with the window.
    clock.now = NOW + WINDOW_S
    part = retained.answer(DashboardQuery(WINDOW_S))
    assert isinstance(part, DashboardPart) and part.series == {}
    stats = retained.answer(StatsQuery("m", ("",)))
    assert isinstance(stats, list) and stats[0].inference_count == 7  # counts stay


def test_a_frontend_answers_the_seconds_since_the_last_collect() -> None:
    clock = _Clock(NOW - 10)
    dashboard, stats = DashboardRecorder(1, clock=clock), StatsRecorder()
    for second in (NOW - 10, NOW - 5, NOW):
        clock.now = second
        dashboard.on_infer(_event())
        stats.on_infer(_event())
    figures = answer_figures(FiguresQuery(0), stats, dashboard)
    assert figures.stats[0].inference_count == 3
    assert figures.dashboard is not None
    assert [b.second for b in figures.dashboard.series[("m", "")]] == [NOW - 10, NOW - 5, NOW]
    figures.stats[0].inference_count = 99  # a copy: the recorder is not touched
    assert stats.get("m", None).inference_count == 3


async def test_the_supervisor_keeps_a_dead_frontends_figures_in_every_answer() -> None:
    from mlpack.server.frontends import FrontendSupervisor

    asked: list[int] = []

    async def frontend(message: Any) -> Any:
        asked.append(message.since)
        return Snapshot(message.call_id, [], _figures(6, {NOW: 6}))

    left, right, tasks = await linked_pair(frontend)
    supervisor = FrontendSupervisor(Settings(), [], None, 1)
    slot = supervisor.slots[0]
    slot.link = left
    try:
        await supervisor.collect()
        await supervisor.collect()
        assert asked == [0, NOW]  # then only the seconds since the last answer
        assert slot.figures.stats[("m", "")].inference_count == 6
        supervisor._retire_figures(slot)  # it died
        assert slot.figures.stats == {}
        slot.link = None  # no live front-end: the answer is what the dead one counted
        gathered = await supervisor._handle(left, Gather(4, StatsQuery("m", ("",))))
        assert isinstance(gathered, Gathered) and gathered.values == [] and gathered.retired == 1
        assert [s.inference_count for s in gathered.retained] == [6]
    finally:
        left.close()
        right.close()
        await asyncio.gather(*tasks)


async def test_a_frontend_adds_the_retained_figures_and_says_so() -> None:
    live = ModelStats("m", "", inference_count=2)
    dead = ModelStats("m", "", inference_count=5)
    buckets = {("m", ""): [_Bucket(NOW, requests=5, latencies=[2.0] * 5, seen=5)]}

    async def supervisor(message: Any) -> Any:
        if isinstance(message.query, StatsQuery):
            return Gathered(message.call_id, [(0, [live])], [], [dead], 1)
        retained = DashboardPart(0, 0, buckets)
        mine = DashboardPart(NOW, 1, {("m", ""): [_Bucket(NOW, requests=2, seen=2)]})
        return Gathered(message.call_id, [(0, mine)], [], retained, 1)

    left, right, tasks = await linked_pair(supervisor)
    try:
        across = AcrossFrontends(left, 0, timeout=5.0)
        merged, note = await across.stats(StatsQuery("m", ("",)), [live])
        assert [s.inference_count for s in merged] == [7]
        assert note["retired"] == 1 and note["answered"] == [0] and note["complete"]
        part, note = await across.dashboard(60, DashboardPart(NOW, 1, {}))
        assert [b.requests for b in part.series[("m", "")]] == [7] and part.workers == 1
    finally:
        left.close()
        right.close()
        await asyncio.gather(*tasks)


def test_gather_waits_are_settings_with_bounds() -> None:
    settings = Settings(frontend_gather_timeout=0.5, frontend_gather_total_timeout=1.5)
    assert (settings.frontend_gather_timeout, settings.frontend_collect_timeout) == (0.5, 5.0)
    with pytest.raises(ValidationError, match="must be longer than"):
        Settings(frontend_gather_timeout=3.0, frontend_gather_total_timeout=3.0)
    for bad in ({"frontend_gather_timeout": 0}, {"frontend_collect_timeout": 301}):
        with pytest.raises(ValidationError):
            Settings(**bad)


def test_gather_waits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPACK_FRONTEND_GATHER_TIMEOUT", "1")
    monkeypatch.setenv("MLPACK_FRONTEND_GATHER_TOTAL_TIMEOUT", "4")
    monkeypatch.setenv("MLPACK_FRONTEND_COLLECT_TIMEOUT", "7")
    settings = Settings()
    assert settings.frontend_gather_timeout == 1.0
    assert settings.frontend_gather_total_timeout == 4.0
    assert settings.frontend_collect_timeout == 7.0
