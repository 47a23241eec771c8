"""Figures across front-ends: retained counters, merged statistics and dashboard buckets."""

from __future__ import annotations

import asyncio
import pickle
import random
from typing import Any

from mlpack.engine.stats import InferEvent, InferTiming, ModelStats, StatsRecorder
from mlpack.server.dashboard import DashboardRecorder, _Bucket, render_series
from mlpack.server.frontend_link import Answer, Ask, Gather, Gathered
from mlpack.server.frontend_metrics import FrontendCollector
from mlpack.server.frontend_stats import (
    AcrossFrontends,
    DashboardPart,
    DashboardQuery,
    StatsQuery,
    answer_locally,
    gather,
    merge_dashboard,
    merge_reservoirs,
    merge_stats,
)
from tests.helpers.links import linked_pair


class _Slot:
    def __init__(self, index: int, families: list[Any]) -> None:
        self.index, self.families, self.ready, self.restarts = index, families, True, 0


def _families(requests: float, in_flight: float, latency_count: float) -> list[Any]:
    labels = {"model_name": "m", "model_version": ""}
    return [
        ("rest_server_requests", "REST", "counter", [("rest_server_requests_total", {}, requests)]),
        ("model_in_flight", "in flight", "gauge", [("model_in_flight", labels, in_flight)]),
        (
            "latency",
            "latency",
            "histogram",
            [
                ("latency_bucket", {**labels, "le": "+Inf"}, latency_count),
                ("latency_count", labels, latency_count),
                ("latency_sum", labels, latency_count * 0.5),
            ],
        ),
    ]


def _scrape(collector: FrontendCollector) -> dict[tuple[str, tuple[Any, ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in collector.collect()
        for s in family.samples
    }


def test_a_dead_frontends_counters_stay_in_the_sum_and_its_gauges_leave() -> None:
    slots = [_Slot(0, _families(5, 2, 5)), _Slot(1, _families(7, 3, 7))]
    collector = FrontendCollector(slots)
    first = _scrape(collector)
    assert first[("rest_server_requests_total", ())] == 12
    assert first[("model_in_flight", (("model_name", "m"), ("model_version", "")))] == 5

    collector.retire(slots[0])  # front-end 0 died; its replacement starts from zero
    assert slots[0].families == []
    after = _scrape(collector)
    assert after[("rest_server_requests_total", ())] == 12
    assert after[("latency_count", (("model_name", "m"), ("model_version", "")))] == 12
    assert after[("model_in_flight", (("model_name", "m"), ("model_version", "")))] == 3
    assert after[("frontend_requests_total", (("frontend", "0"),))] == 5

    slots[0].families = _families(2, 1, 2)  # the replacement served 2
    grown = _scrape(collector)
    assert grown[("rest_server_requests_total", ())] == 14
    assert grown[("frontend_requests_total", (("frontend", "0"),))] == 7
    assert grown[("frontend_requests_total", (("frontend", "1"),))] == 7


def _event(ok: bool, duration: float, batch: int = 1) -> InferEvent:
    return InferEvent("m", "", ok, duration, InferTiming(queue_wait=0.001, batch_size=batch))


def test_stats_add_up_over_frontends() -> None:
    one, two = StatsRecorder(), StatsRecorder()
    for _ in range(3):
        one.on_infer(_event(True, 0.01))
    two.on_infer(_event(True, 0.02, batch=4))
    two.on_infer(_event(False, 0.03))
    total = merge_stats([one.get("m", None), two.get("m", None)])
    data = total.as_dict()
    assert data["inference_count"] == 4 and data["execution_count"] == 4
    assert data["inference_stats"]["success"] == {"count": 4, "ns": 50_000_000}
    assert data["inference_stats"]["fail"] == {"count": 1, "ns": 30_000_000}
    assert data["inference_stats"]["queue"]["count"] == 4
    batches = {b["batch_size"]: b["compute_infer"]["count"] for b in data["batch_stats"]}
    assert batches == {1: 3, 4: 1}
    assert total.last_inference == max(
        one.get("m", None).last_inference, two.get("m", "").last_inference
    )


def test_reservoirs_merge_in_proportion_to_what_each_side_saw() -> None:
    chooser = random.Random(1)
    # Both whole and small enough: all values, nothing dropped.
    assert sorted(merge_reservoirs(([1.0, 2.0], 2), ([3.0], 1), 200, chooser)) == [1.0, 2.0, 3.0]
    # Side a saw 900 values (kept 100), side b saw 100 (kept 100): a gets 90 % of 100 slots.
    a, b = [1.0] * 100, [2.0] * 100
    merged = merge_reservoirs((a, 900), (b, 100), 100, chooser)
    assert len(merged) == 100 and merged.count(1.0) == 90 and merged.count(2.0) == 10
    # A side with fewer kept values than its share gives all it has.
    merged = merge_reservoirs(([1.0] * 5, 1000), ([2.0] * 100, 100), 100, chooser)
    assert merged.count(1.0) == 5 and merged.count(2.0) == 95
    assert merge_reservoirs(([], 0), ([], 0), 100, chooser) == []


def test_dashboard_buckets_merge_by_second_and_percentiles_come_from_pooled_latencies() -> None:
    fast = _Bucket(100, requests=10, executions=10, batched_requests=10, busy_s=0.1, seen=10)
    fast.latencies = [1.0] * 10
    slow = _Bucket(100, requests=10, executions=5, batched_requests=10, busy_s=0.4, seen=10)
    slow.latencies = [9.0] * 10
    later = _Bucket(101, requests=1, seen=1, latencies=[5.0])
    parts = [
        DashboardPart(101, 1, {("m", ""): [fast, later]}),
        DashboardPart(101, 1, {("m", ""): [slow]}),
    ]
    merged = merge_dashboard(parts)
    assert merged.workers == 2
    (buckets,) = merged.series.values()
    assert [b.requests for b in buckets] == [20, 1]
    data = render_series(merged.now, 10, merged.series, merged.workers)
    series = data["models"][0]["series"]
    assert series["rps"][-2:] == [20, 1]
    # p50 of 10 x 1 ms and 10 x 9 ms pooled is 1 ms, p99 is 9 ms: not an average (5 ms).
    assert series["p50_ms"][-2] == 1.0 and series["p99_ms"][-2] == 9.0
    assert series["batch"][-2] == 20 / 15
    assert series["busy"][-2] == 0.25


def test_local_answers_and_messages_pickle() -> None:
    stats = StatsRecorder()
    stats.on_infer(_event(True, 0.01))
    dashboard = DashboardRecorder(clock=lambda: 1000.0)
    dashboard.on_infer(_event(True, 0.01))
    (answer,) = answer_locally(StatsQuery("m", ("",)), stats, dashboard)  # type: ignore[misc]
    assert answer.inference_count == 1
    part = answer_locally(DashboardQuery(60), stats, dashboard)
    assert isinstance(part, DashboardPart) and part.series[("m", "")][0].requests == 1
    assert answer_locally(DashboardQuery(60), stats, None) is None
    for message in (
        Gather(1, StatsQuery("m", (None, "v1"))),
        Gathered(1, [(0, [answer]), (1, part)], [2]),
        Ask(2, DashboardQuery(60)),
        Answer(2, part),
    ):
        assert pickle.loads(pickle.dumps(message)) == message


async def test_gather_leaves_out_a_frontend_that_does_not_answer() -> None:
    stuck = asyncio.Event()  # never set: front-end 1 is busy for the whole call

    def frontend(count: int, hang: bool) -> Any:
        async def handle(message: Any) -> Any:
            if hang:
                await stuck.wait()
            recorder = StatsRecorder()
            for _ in range(count):
                recorder.on_infer(_event(True, 0.01))
            return Answer(message.call_id, answer_locally(message.query, recorder, None))

        return handle

    links = [await linked_pair(frontend(3, False)), await linked_pair(frontend(4, True))]
    try:
        query = StatsQuery("m", ("",))
        live = [(0, links[0][0]), (1, links[1][0])]
        gathered = await gather(Gather(7, query), live, 0.2)
        assert gathered.call_id == 7 and gathered.missing == [1]
        assert [(i, v[0].inference_count) for i, v in gathered.values] == [(0, 3)]
        # A link that closed counts as missing too.
        links[0][1].close()
        await asyncio.wait_for(links[0][0].closed.wait(), 10)
        assert (await gather(Gather(8, query), live[:1], 0.2)).missing == [0]
    finally:
        stuck.set()
        for left, right, tasks in links:
            left.close()
            right.close()
            await asyncio.gather(*tasks)


async def test_a_frontend_merges_what_the_supervisor_gathered() -> None:
    parts = [ModelStats("m", "", inference_count=2), ModelStats("m", "", inference_count=5)]

    async def supervisor(message: Any) -> Any:
        return Gathered(message.call_id, [(0, [parts[0]]), (1, [parts[1]])], [2])

    left, right, tasks = await linked_pair(supervisor)
    try:
        across = AcrossFrontends(left, 1)
        merged, note = await across.stats(StatsQuery("m", ("",)), [parts[1]])
        assert [s.inference_count for s in merged] == [7]
        assert note == {
            "frontend": 1,
            "answered": [0, 1],
            "missing": [2],
            "retired": 0,
            "complete": False,
        }
    finally:
        right.close()
        await asyncio.wait_for(left.closed.wait(), 10)
        # The supervisor gone: this front-end's own figures, flagged incomplete.
        merged, note = await AcrossFrontends(left, 1).stats(StatsQuery("m", ("",)), [parts[1]])
        assert [s.inference_count for s in merged] == [5] and note["complete"] is False
        await asyncio.gather(*tasks)


async def test_an_older_collect_answer_never_replaces_a_newer_one() -> None:
    from mlpack.server.frontend_link import Collect, Snapshot
    from mlpack.server.frontends import FrontendSupervisor
    from mlpack.settings import Settings

    older, newer = _families(5, 0, 5), _families(6, 0, 6)
    gate = asyncio.Event()

    async def frontend(message: Collect) -> Snapshot:
        if message.call_id == 1:  # the first collect's answer arrives last
            await gate.wait()
            return Snapshot(message.call_id, older)
        return Snapshot(message.call_id, newer)

    left, right, tasks = await linked_pair(frontend)
    supervisor = FrontendSupervisor(Settings(), [], None, 1)
    slot = supervisor.slots[0]
    slot.link = left
    try:
        first = asyncio.create_task(supervisor.collect())  # e.g. the periodic collect
        while not left._pending:
            await asyncio.sleep(0)
        await supervisor.collect()  # e.g. a scrape
        assert slot.families == newer
        gate.set()
        await first
        assert slot.families == newer and slot.families_call == 2
        # A front-end that stops answering keeps its last families (its counters stay).
        right.close()
        await asyncio.wait_for(left.closed.wait(), 10)
        await supervisor.collect()
        assert slot.families == newer
    finally:
        gate.set()
        left.close()
        await asyncio.gather(*tasks)


def test_dashboard_answers_are_bounded(monkeypatch: Any) -> None:
    import mlpack.server.frontend_stats as frontend_stats

    monkeypatch.setattr(frontend_stats, "MAX_DASHBOARD_SAMPLES", 50)
    clock = [1000.0]
    dashboard = DashboardRecorder(clock=lambda: clock[0])
    for second in range(10):
        clock[0] = 1000.0 + second
        for _ in range(30):
            dashboard.on_infer(_event(True, 0.01))
    part = answer_locally(DashboardQuery(60), StatsRecorder(), dashboard)
    assert isinstance(part, DashboardPart)
    (buckets,) = part.series.values()
    assert sum(len(b.latencies) for b in buckets) <= 50
    assert [b.seen for b in buckets] == [30] * 10  # the weights for merging stay
    # The recorder's own buckets are untouched (the answer holds copies).
    assert len(dashboard.buckets(60)[1][("m", "")][0].latencies) == 30
