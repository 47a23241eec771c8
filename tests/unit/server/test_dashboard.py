"""The dashboard recorder's per-second series and its endpoints (in process)."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette

from mlpack.engine.stats import InferEvent, InferTiming
from mlpack.server.dashboard import (
    SAMPLES_PER_SECOND,
    WINDOW_S,
    DashboardEndpoints,
    DashboardRecorder,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def event(
    duration: float,
    batch: int = 1,
    first: bool = True,
    ok: bool = True,
    queue: float = 0.0,
    depth: int = 0,
) -> InferEvent:
    timing = InferTiming(
        queue_wait=queue, batch_size=batch, executions=1 if first else 0, batch_queue=depth
    )
    return InferEvent("m", "v1", ok, duration, timing)


def test_series_per_second() -> None:
    clock = Clock()
    recorder = DashboardRecorder(workers=2, clock=clock)
    for i in range(4):  # one batch of 4: one execution, 4 requests
        recorder.on_infer(event(0.010 + i * 0.010, batch=4, first=i == 0, depth=3))
    recorder.on_infer(event(0.5, ok=False))
    clock.now += 2  # a quiet second in between
    recorder.on_infer(event(0.002))
    snap = recorder.snapshot(window=3)
    assert snap["start"] == snap["now"] - 2
    (model,) = snap["models"]
    s = model["series"]
    assert (model["name"], model["version"]) == ("m", "v1")
    assert s["rps"] == [5, 0, 1] and s["errors"] == [1, 0, 0]
    assert s["p50_ms"][0] == 20.0 and s["p99_ms"][0] == 40.0 and s["p50_ms"][1] is None
    assert s["batch"] == [4.0, None, 1.0]
    assert s["queue"] == [3, 0, 0]
    assert s["busy"][0] == 0.010 / 2  # compute of the one execution, over two workers


def test_young_server_shows_what_it_has() -> None:
    clock = Clock()
    recorder = DashboardRecorder(clock=clock)
    recorder.on_infer(event(0.001))
    clock.now += 30
    recorder.on_infer(event(0.001))
    snap = recorder.snapshot()
    assert snap["now"] - snap["start"] == 30 and snap["models"][0]["series"]["rps"][0] == 1


def test_a_clock_stepping_back_loses_nothing() -> None:
    clock = Clock()
    recorder = DashboardRecorder(clock=clock)
    recorder.on_infer(event(0.001))
    clock.now -= 1  # e.g. another thread read the time just before the second ticked
    recorder.on_infer(event(0.001))
    clock.now += 1
    assert sum(recorder.snapshot(window=10)["models"][0]["series"]["rps"]) == 2


def test_memory_is_bounded() -> None:
    clock = Clock()
    recorder = DashboardRecorder(clock=clock)
    for _ in range(SAMPLES_PER_SECOND * 3):
        recorder.on_infer(event(0.001))
    for _ in range(WINDOW_S + 50):
        clock.now += 1
        recorder.on_infer(event(0.001))
    buckets = recorder._series[("m", "v1")]
    assert len(buckets) <= WINDOW_S and all(len(b.latencies) <= SAMPLES_PER_SECOND for b in buckets)


async def test_endpoints() -> None:
    recorder = DashboardRecorder()
    recorder.on_infer(event(0.003))
    app = Starlette(routes=DashboardEndpoints(recorder, "<srv>").routes())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test",  # type: ignore[arg-type]
    ) as client:
        await _check_endpoints(client)


async def _check_endpoints(client: httpx.AsyncClient) -> None:
    page = await client.get("/v2/dashboard")
    assert page.status_code == 200 and "<canvas" not in page.text  # canvases are made per model
    assert "&lt;srv&gt;" in page.text and "dashboard/data.json" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing from outside
    data = (await client.get("/v2/dashboard/data.json?window=10")).json()
    series = data["models"][0]["series"]
    assert series["rps"][-1] == 1 and len(series["rps"]) == 10  # at least 10 s are shown
    assert (await client.get("/v2/dashboard/data.json?window=0")).status_code == 400
    bad = await client.get("/v2/dashboard/data.json?window=soon")
    assert bad.status_code == 400 and "whole seconds" in bad.json()["error"]
