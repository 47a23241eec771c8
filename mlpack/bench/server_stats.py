"""What the server saw during a measurement: its statistics endpoint, and (local) CPU and RSS.

``GET /v2/models/{m}[/versions/{v}]/stats`` (Triton's statistics extension, which mlpack
serves) is read before and after the measured phase; the difference gives the requests
and model executions the server counted, the average batch (requests per execution) and
the split of each request's time into queue and compute. Servers without the endpoint
give ``None``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote

import httpx

from .processes import process_tree, tree_cpu_seconds

STATS_TIMEOUT = 10.0
SAMPLE_INTERVAL = 0.5


@dataclass
class ServerSplit:
    """Server-side counts and mean times per request over one measured phase."""

    requests: int
    failures: int
    executions: int
    avg_batch: float  # requests per model execution
    queue_ms: float  # mean per successful request
    compute_ms: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


async def fetch_stats(
    client: httpx.AsyncClient, base_url: str, model: str, version: str | None = None
) -> dict[str, Any] | None:
    """The model's stats entry (summed over versions), or None when the server has no endpoint."""
    path = f"{base_url}/v2/models/{quote(model, safe='')}"
    if version:
        path += f"/versions/{quote(version, safe='')}"
    try:
        response = await client.get(path + "/stats", timeout=STATS_TIMEOUT)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    try:
        entries = response.json().get("model_stats") or []
    except ValueError:
        return None
    counts = {"inference_count": 0, "execution_count": 0}
    durations = {key: [0, 0] for key in ("success", "fail", "queue", "compute_infer")}
    for entry in entries:
        for key in counts:
            counts[key] += int(entry.get(key, 0))
        stats = entry.get("inference_stats", {})
        for key, pair in durations.items():
            part = stats.get(key, {})
            pair[0] += int(part.get("count", 0))
            pair[1] += int(part.get("ns", 0))
    return {**counts, **durations}


def stats_delta(before: dict[str, Any] | None, after: dict[str, Any] | None) -> ServerSplit | None:
    """What happened between two ``fetch_stats`` readings."""
    if before is None or after is None:
        return None
    ok = after["success"][0] - before["success"][0]
    fail = after["fail"][0] - before["fail"][0]
    executions = after["execution_count"] - before["execution_count"]
    queue_ns = after["queue"][1] - before["queue"][1]
    compute_ns = after["compute_infer"][1] - before["compute_infer"][1]
    inferences = after["inference_count"] - before["inference_count"]
    return ServerSplit(
        requests=ok + fail,
        failures=fail,
        executions=executions,
        avg_batch=inferences / executions if executions else 0.0,
        queue_ms=queue_ns / 1e6 / ok if ok else 0.0,
        compute_ms=compute_ns / 1e6 / ok if ok else 0.0,
    )


class ProcessSampler:
    """Samples a local server's process tree: CPU (cores used) and peak RSS over a window."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_rss_mib = 0.0
        self._cpu0 = 0.0
        self._wall0 = 0.0
        self._task: asyncio.Task[None] | None = None

    def _rss_mib(self) -> float:
        from .processes import _status_kib

        return sum(_status_kib(p, b"VmRSS:") for p in process_tree(self.pid)) / 1024

    async def _sample(self) -> None:
        while True:
            self.peak_rss_mib = max(self.peak_rss_mib, await asyncio.to_thread(self._rss_mib))
            await asyncio.sleep(SAMPLE_INTERVAL)

    def start(self) -> None:
        self._cpu0 = tree_cpu_seconds(self.pid)
        self._wall0 = time.perf_counter()
        self._task = asyncio.create_task(self._sample())

    async def stop(self) -> dict[str, float]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.peak_rss_mib = max(self.peak_rss_mib, self._rss_mib())
        wall = max(time.perf_counter() - self._wall0, 1e-9)
        cpu = tree_cpu_seconds(self.pid) - self._cpu0
        return {"pid": self.pid, "cpu_cores": cpu / wall, "rss_mib_peak": self.peak_rss_mib}
