"""The gauges an autoscaler scales on, read from a real server's metrics endpoint."""

from __future__ import annotations

import re
import shutil
import threading
from pathlib import Path

import httpx
import pytest

from tests.helpers.server import ASSETS, start_server

pytestmark = pytest.mark.e2e


def gauge(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        match = re.match(rf"{name}\{{(.*)\}} (\S+)$", line)
        if match and all(f'{key}="{value}"' in match.group(1) for key, value in labels.items()):
            return float(match.group(2))
    return None


def test_in_flight_waiting_and_busy_gauges(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    shutil.copytree(ASSETS / "models" / "slow", folder / "slow")
    server = start_server(folder, tmp_path, args=("--parallel-workers", "1"))
    metrics_url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    statuses: list[int] = []
    release = 8.0  # each request sleeps this long in the (single) worker

    def call() -> None:
        body = {"inputs": [{"name": "s", "shape": [1], "datatype": "FP64", "data": [release]}]}
        statuses.append(
            httpx.post(f"{server.url}/v2/models/slow/infer", json=body, timeout=120).status_code
        )

    try:
        idle = httpx.get(metrics_url, timeout=30).text
        assert gauge(idle, "model_requests_in_flight", model_name="slow") == 0
        assert gauge(idle, "worker_pool_busy_ratio", pool="default") == 0
        threads = [threading.Thread(target=call) for _ in range(3)]
        for thread in threads:
            thread.start()
        seen = ""
        for _ in range(400):  # until all three are accepted (bounded)
            seen = httpx.get(metrics_url, timeout=30).text
            if gauge(seen, "model_requests_in_flight", model_name="slow") == 3:
                break
        assert gauge(seen, "model_requests_in_flight", model_name="slow") == 3, seen
        # One worker takes two requests at a time (max_in_flight): the third waits for a slot.
        assert gauge(seen, "model_requests_waiting", model_name="slow") == 1
        assert gauge(seen, "worker_pool_waiting", pool="default") == 1
        assert gauge(seen, "worker_pool_busy_ratio", pool="default") == 1.0
        for thread in threads:
            thread.join(120)
        assert statuses == [200, 200, 200]
        after = httpx.get(metrics_url, timeout=30).text
        assert gauge(after, "model_requests_in_flight", model_name="slow") == 0
        assert gauge(after, "model_requests_waiting", model_name="slow") == 0
    finally:
        server.stop()
