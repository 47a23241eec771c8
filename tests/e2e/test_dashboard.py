"""The live dashboard of a real ``mlpack start``, rendered by headless Chromium."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from tests.helpers.bench import run_bench
from tests.helpers.browser import colours_in, near, read_png, screenshot
from tests.helpers.server import ASSETS, REPO, start_server

pytestmark = pytest.mark.e2e

# mlpack/server/_dashboard/index.html fixes the layout: a 56 px header, a 32 px model title,
# then 400x180 canvases in three columns 12 px apart, 16 px from the left.
CANVASES = {
    "throughput": ((16, 88), "#1f77b4"),
    "latency": ((428, 88), "#d62728"),
    "batch": ((840, 88), "#2ca02c"),
    "queue": ((16, 280), "#9467bd"),
    "busy": ((428, 280), "#8c564b"),
}


def test_dashboard_renders_live_charts_offline(tmp_path: Path) -> None:
    shutil.copytree(ASSETS / "bench" / "rows", tmp_path / "rows")
    server = start_server(tmp_path / "rows", tmp_path)
    try:
        # Traffic over about four seconds (open loop), so every series has a line.
        result = run_bench(
            "-m",
            "rows",
            "-u",
            server.url,
            "--rate",
            "100",
            "-c",
            "16",
            "-b",
            "2",
            "-n",
            "400",
            "-w",
            "0",
        )
        assert result.returncode == 0, result.stderr
        data = httpx.get(server.url + "/v2/dashboard/data.json?window=60", timeout=10).json()
        (model,) = data["models"]
        # The same requests the stats endpoint counts (on a busy machine the open loop may drop
        # a few it could not send in time; those never reach the server).
        stats = httpx.get(server.url + "/v2/models/rows/stats", timeout=10).json()
        inference = stats["model_stats"][0]["inference_stats"]
        served = inference["success"]["count"] + inference["fail"]["count"]
        assert 300 < served <= 400 and sum(model["series"]["rps"]) == served, data
        shot = screenshot(tmp_path, server.url + "/v2/dashboard", width=1280, height=480)
        local = f"http://127.0.0.1:{server.http_port}/"
        assert any(u.startswith(local + "v2/dashboard/data.json") for u in shot.page_requests)
        assert [u for u in shot.page_requests if not u.startswith(local)] == []
        artifacts = REPO / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        shutil.copy(shot.png, artifacts / "dashboard.png")
        _, _, rows = read_png(shot.png)
        for name, ((x, y), colour) in CANVASES.items():
            counts = colours_in(rows, (x + 44, y + 22, 400 - 54, 180 - 44))  # inside the axes
            # Legends sit above this box: any pixel of the colour here is the line.
            assert near(counts, colour, 30) > 40, f"{name}: no {colour} line drawn"
        empty = colours_in(rows, (840 + 44, 280 + 22, 300, 130))  # no sixth chart there
        assert all(near(empty, c, 30) == 0 for _, c in CANVASES.values())
    finally:
        server.stop()


def test_dashboard_can_be_turned_off(tmp_path: Path) -> None:
    shutil.copytree(ASSETS / "bench" / "rows", tmp_path / "rows")
    server = start_server(tmp_path / "rows", tmp_path, env={"MLPACK_DASHBOARD_ENABLED": "false"})
    try:
        response = httpx.get(server.url + "/v2/dashboard", timeout=10)
        assert response.status_code == 404 and "error" in response.json()
        assert httpx.get(server.url + "/v2/models/rows/stats", timeout=10).status_code == 200
    finally:
        server.stop()
