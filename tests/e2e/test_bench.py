"""``mlpack bench`` against a real ``mlpack start``: the counts agree with the server's own."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.bench import run_bench
from tests.helpers.server import ASSETS, RunningServer, start_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def rows_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("bench")
    shutil.copytree(ASSETS / "bench" / "rows", tmp / "rows")
    running = start_server(tmp / "rows", tmp)
    yield running
    running.stop()


def server_counts(server: RunningServer) -> dict[str, float]:
    """Requests from the stats endpoint; rows and calls from the model's own custom metric."""
    stats = httpx.get(server.url + "/v2/models/rows/stats", timeout=10).json()["model_stats"][0]
    text = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).text
    metric: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in ("bench_rows_sum", "bench_rows_count"):
                metric[sample.name] = sample.value
    return {
        "requests": stats["inference_stats"]["success"]["count"],
        "rows": metric.get("bench_rows_sum", 0.0),
        "calls": metric.get("bench_rows_count", 0.0),
    }


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {key: after[key] - before[key] for key in after}


@pytest.mark.parametrize("transport", ["rest", "rest-binary", "grpc"])
def test_counts_match_the_server(
    rows_server: RunningServer, tmp_path: Path, transport: str
) -> None:
    out = tmp_path / "result.json"
    before = server_counts(rows_server)
    result = run_bench(
        "-m",
        "rows",
        "-u",
        rows_server.url,
        "--grpc-url",
        rows_server.grpc_address,
        "-t",
        transport,
        "-c",
        "2,4",
        "-b",
        "3",
        "-n",
        "40",
        "-w",
        "0",
        "--local",
        "--json",
        str(out),
    )
    assert result.returncode == 0, result.stderr + result.stdout
    seen = delta(server_counts(rows_server), before)
    document = json.loads(out.read_text())
    points = document["results"]
    assert [p["config"]["concurrency"] for p in points] == [2, 4]
    for point in points:
        client = point["client"]
        assert client["requests"] == 40 and client["errors"] == 0, client["error_samples"]
        assert client["rows"] == 120
        assert point["server"]["requests"] == 40  # the server's stats for exactly this phase
        assert point["server"]["compute_ms"] > 0
        assert point["process"]["rss_mib_peak"] > 10
    assert seen == {"requests": 80, "rows": 240, "calls": 80}
    assert f"| {transport} rows=3 | c=2 |" in result.stdout  # the Markdown table


def test_warmup_is_not_counted(rows_server: RunningServer, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    before = server_counts(rows_server)
    result = run_bench(
        "-m", "rows", "-u", rows_server.url, "-n", "25", "-w", "0.5", "--json", str(out)
    )
    assert result.returncode == 0, result.stderr
    seen = delta(server_counts(rows_server), before)
    point = json.loads(out.read_text())["results"][0]
    assert point["client"]["requests"] == 25 and point["server"]["requests"] == 25
    assert seen["requests"] > 25  # the warm-up reached the server, drained before measuring


def test_open_loop_keeps_the_rate(rows_server: RunningServer, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    before = server_counts(rows_server)
    result = run_bench(
        "-m",
        "rows",
        "-u",
        rows_server.url,
        "--rate",
        "150",
        "-c",
        "48",  # room for 4 x 48 requests waiting: only a stall of over a second drops any
        "-d",
        "1.2",
        "-w",
        "0",
        "--json",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    seen = delta(server_counts(rows_server), before)
    client = json.loads(out.read_text())["results"][0]["client"]
    assert client["mode"] == "open" and client["rate"] == 150
    assert client["scheduled"] == 180  # 150/s for 1.2 s
    assert client["sent"] == 180 and client["requests"] == 180 and client["errors"] == 0
    assert seen["requests"] == 180
    assert client["elapsed_s"] >= 1.2 * (179 / 180)  # sends spread over the window, not bursted


def test_bad_input_is_a_clear_error(rows_server: RunningServer, tmp_path: Path) -> None:
    missing = run_bench("-m", "nope", "-u", rows_server.url, "-n", "1")
    assert missing.returncode == 1 and "model 'nope'" in missing.stderr
    shape = run_bench("-m", "rows", "-u", rows_server.url, "-n", "1", "--shape", "y=-1,2")
    assert shape.returncode == 1 and "does not declare" in shape.stderr
    transport = run_bench("-m", "rows", "-u", rows_server.url, "-t", "carrier-pigeon")
    assert transport.returncode == 2 and "carrier-pigeon" in transport.stderr
    data = tmp_path / "bad.jsonl"
    data.write_text("{not json\n")
    bad = run_bench("-m", "rows", "-u", rows_server.url, "-n", "1", "--data", str(data))
    assert bad.returncode == 1 and "bad.jsonl:1" in bad.stderr


def test_jsonl_data_and_compare(rows_server: RunningServer, tmp_path: Path) -> None:
    data = tmp_path / "requests.jsonl"
    request: dict[str, Any] = {
        "inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}]
    }
    data.write_text(json.dumps(request) + "\n")
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for path in (a, b):
        result = run_bench(
            "-m",
            "rows",
            "-u",
            rows_server.url,
            "-n",
            "10",
            "-w",
            "0",
            "--data",
            str(data),
            "--json",
            str(path),
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(path.read_text())["results"][0]["client"]["rows"] == 20
    compared = run_bench("--compare", str(a), str(b))
    assert compared.returncode == 0, compared.stderr
    assert "| rest rows=2 c=1 |" in compared.stdout and "x |" in compared.stdout
