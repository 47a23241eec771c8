"""The live dashboard: ``/v2/dashboard`` (a page with bundled assets) and its data.

``DashboardRecorder`` is one more observer of the registry's inference events (the
same events the statistics endpoint counts): it keeps per-second buckets per model
version for the last ``WINDOW_S`` seconds — requests, errors, a bounded sample of
latencies, batch sizes, queue depths and model busy time. ``/v2/dashboard/data.json``
turns them into series; the page polls it and draws them on canvases with a small
hand-written chart (no CDN, no library). Off with ``dashboard_enabled: false``.
"""

from __future__ import annotations

import html
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ..engine.stats import InferEvent

WINDOW_S = 300  # seconds of history kept per model version
SAMPLES_PER_SECOND = 200  # latency samples kept per bucket (reservoir): a bound on memory
MAX_MODELS = 256  # model versions tracked (bounded even with many load/unload cycles)


@dataclass
class _Bucket:
    second: int
    requests: int = 0
    errors: int = 0
    executions: int = 0
    batched_requests: int = 0  # requests in the executions counted (for the mean batch)
    busy_s: float = 0.0  # model compute seconds (one per execution)
    queue_max: int = 0
    latencies: list[float] = field(default_factory=list)
    seen: int = 0  # latencies offered to the reservoir


class DashboardRecorder:
    """An inference observer keeping the last ``WINDOW_S`` seconds per model version."""

    def __init__(self, workers: int = 0, clock: Any = time.time) -> None:
        self.workers = max(1, workers)
        self._clock = clock
        self._series: dict[tuple[str, str], list[_Bucket]] = {}
        self._lock = threading.Lock()
        self._random = random.Random(0)

    def on_infer(self, event: InferEvent) -> None:
        key = (event.model_name, event.model_version)
        timing = event.timing
        with self._lock:
            second = int(self._clock())
            buckets = self._series.get(key)
            if buckets is None:
                if len(self._series) >= MAX_MODELS:
                    return
                buckets = self._series[key] = []
            bucket = self._bucket(buckets, second)
            bucket.requests += 1
            if not event.ok:
                bucket.errors += 1
                return
            if timing.executions:
                bucket.executions += timing.executions
                bucket.batched_requests += timing.batch_size * timing.executions
                bucket.busy_s += event.compute
            depth = max(timing.batch_queue or 0, timing.parallel_queue or 0)
            bucket.queue_max = max(bucket.queue_max, depth)
            bucket.seen += 1
            latency_ms = event.duration * 1000
            if len(bucket.latencies) < SAMPLES_PER_SECOND:
                bucket.latencies.append(latency_ms)
            else:
                slot = self._random.randrange(bucket.seen)
                if slot < SAMPLES_PER_SECOND:
                    bucket.latencies[slot] = latency_ms

    @staticmethod
    def _bucket(buckets: list[_Bucket], second: int) -> _Bucket:
        """The bucket of ``second`` (a clock that steps back lands in the newest bucket)."""
        if buckets and buckets[-1].second >= second:
            return buckets[-1]
        buckets.append(_Bucket(second))
        while buckets[0].second <= second - WINDOW_S:
            buckets.pop(0)
        return buckets[-1]

    def buckets(self, window: int = WINDOW_S) -> tuple[int, dict[tuple[str, str], list[_Bucket]]]:
        """The clock's second and copies of the buckets of the last ``window`` seconds."""
        now = int(self._clock())
        start = window_start(now, window)
        with self._lock:
            copies = {
                key: [replace(b, latencies=list(b.latencies)) for b in buckets if b.second >= start]
                for key, buckets in self._series.items()
            }
        return now, copies

    def snapshot(self, window: int = WINDOW_S) -> dict[str, Any]:
        """Per-second series for every model version over the last ``window`` seconds
        (at least 10; less than ``window`` while the server has no older data)."""
        now, copies = self.buckets(window)
        return render_series(now, window, copies, self.workers)


def window_start(now: int, window: int) -> int:
    """The first second of a ``window`` ending at ``now`` (clamped to 1..``WINDOW_S``)."""
    return now - max(1, min(window, WINDOW_S)) + 1


def render_series(
    now: int, window: int, copies: dict[tuple[str, str], list[_Bucket]], workers: int
) -> dict[str, Any]:
    """The dashboard's data: per-second series per model version, from its buckets."""
    start = window_start(now, window)
    # The charts span from the first second with data (a young server shows what it has).
    first = min((b[0].second for b in copies.values() if b), default=now)
    start = max(start, min(first, now - 9))
    models = []
    for (name, version), buckets in sorted(copies.items()):
        by_second = {b.second: b for b in buckets}
        series: dict[str, list[float | None]] = {
            k: [] for k in ("rps", "errors", "p50_ms", "p99_ms", "batch", "queue", "busy")
        }
        for second in range(start, now + 1):
            b = by_second.get(second)
            lat = sorted(b.latencies) if b else []
            series["rps"].append(b.requests if b else 0)
            series["errors"].append(b.errors if b else 0)
            series["p50_ms"].append(_pct(lat, 50))
            series["p99_ms"].append(_pct(lat, 99))
            series["batch"].append(
                b.batched_requests / b.executions if b and b.executions else None
            )
            series["queue"].append(b.queue_max if b else 0)
            series["busy"].append(min(1.0, b.busy_s / workers) if b else 0.0)
        models.append({"name": name, "version": version, "series": series})
    return {"now": now, "start": start, "workers": workers, "models": models}


def _pct(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    return values[max(0, min(len(values), math.ceil(pct / 100 * len(values))) - 1)]


@lru_cache(maxsize=1)
def _page() -> str:
    return (Path(__file__).parent / "_dashboard" / "index.html").read_text()


class DashboardEndpoints:
    """``GET /v2/dashboard`` (the page) and ``GET /v2/dashboard/data.json`` (its data)."""

    def __init__(
        self,
        recorder: DashboardRecorder,
        server_name: str = "mlpack",
        across: Callable[[], Any] = lambda: None,
    ) -> None:
        self.recorder = recorder
        self.server_name = server_name
        # Several front-ends: an ``AcrossFrontends`` (server/frontend_stats.py) that merges
        # every front-end's buckets into this one's.
        self.across = across

    async def page(self, request: Request) -> Response:
        return HTMLResponse(_page().replace("{{server_name}}", html.escape(self.server_name)))

    async def data(self, request: Request) -> Response:
        raw = request.query_params.get("window", str(WINDOW_S))
        try:
            window = int(raw)
        except ValueError:
            return JSONResponse(
                {"error": f"window must be whole seconds, got {raw!r}"}, status_code=400
            )
        if not 1 <= window <= WINDOW_S:
            return JSONResponse({"error": f"window must be 1..{WINDOW_S} seconds"}, status_code=400)
        across = self.across()
        if across is None:
            data = self.recorder.snapshot(window)
        else:
            from .frontend_stats import DashboardPart

            now, copies = self.recorder.buckets(window)
            local = DashboardPart(now, self.recorder.workers, copies)
            merged, note = await across.dashboard(window, local)
            data = render_series(merged.now, window, merged.series, merged.workers)
            data["frontends"] = note
        return JSONResponse(data, headers={"Cache-Control": "no-store"})

    def routes(self) -> list[Route]:
        return [
            Route("/v2/dashboard", self.page, methods=["GET"]),
            Route("/v2/dashboard/data.json", self.data, methods=["GET"]),
        ]
