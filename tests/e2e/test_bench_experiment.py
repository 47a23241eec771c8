"""An experiment file end to end: local servers per settings set, JSON/Markdown/HTML, browser."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from tests.helpers.bench import run_bench
from tests.helpers.browser import colours_in, near, read_png, screenshot
from tests.helpers.server import ASSETS, REPO

pytestmark = pytest.mark.e2e

# Where the report's plots are on a 1280-wide window (mlpack/bench/html.py fixes the layout:
# 64 px header, 16 px gaps, 600x340 figures with a 1 px border; charts.py: the plot area
# sits 64 px from the left and 28 px from the top of a figure, 520 x 228 px).
FIGURES = {
    "throughput-latency": (24, 80),
    "latency-percentiles": (642, 80),
    "queue-compute": (24, 438),
}
BLUE, RED = "#1f77b4", "#d62728"  # the first two series (and queue, compute)


def plot_box(name: str) -> tuple[int, int, int, int]:
    x, y = FIGURES[name]
    return (x + 1 + 66, y + 1 + 30, 516, 224)


def test_experiment_matrix_end_to_end(tmp_path: Path) -> None:
    shutil.copytree(ASSETS / "bench" / "rows", tmp_path / "rows")
    (tmp_path / "base.yaml").write_text(
        textwrap.dedent("""\
        model: rows
        folder: rows
        requests: 40
        warmup: 0
        matrix:
          concurrency: [1, 2, 4]
    """)
    )
    (tmp_path / "exp.yaml").write_text(
        textwrap.dedent("""\
        extends: base.yaml
        title: rows model, batching off and on
        matrix:
          rows: [2]
          server:
            - {}
            - {max_batch_size: 8, max_batch_time: 0.002}
        output: {json: out/results.json, markdown: out/results.md, html: out/report.html}
    """)
    )
    result = run_bench("--experiment", str(tmp_path / "exp.yaml"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    document = json.loads((tmp_path / "out" / "results.json").read_text())
    assert document["title"] == "rows model, batching off and on"
    results = document["results"]
    assert [(r["config"]["server"], r["config"]["concurrency"]) for r in results] == [
        ({}, 1),
        ({}, 2),
        ({}, 4),
        ({"max_batch_size": 8, "max_batch_time": 0.002}, 1),
        ({"max_batch_size": 8, "max_batch_time": 0.002}, 2),
        ({"max_batch_size": 8, "max_batch_time": 0.002}, 4),
    ]
    for r in results:
        assert r["client"]["requests"] == 40 and r["client"]["errors"] == 0
        assert r["client"]["rows"] == 80 and r["server"]["requests"] == 40
        assert r["process"]["cpu_cores"] >= 0
    markdown = (tmp_path / "out" / "results.md").read_text()
    assert markdown.count("| rest rows=2") == 6 and "max_batch_size=8" in markdown

    html = (tmp_path / "out" / "report.html").read_text()
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    shot = screenshot(tmp_path, (tmp_path / "out" / "report.html").as_uri(), height=800)
    assert [u for u in shot.page_requests if not u.startswith(("file:", "data:"))] == []
    _, _, rows = read_png(shot.png)
    for name in FIGURES:
        counts = colours_in(rows, plot_box(name))
        assert near(counts, BLUE) > 100, f"{name}: first series not drawn"
        assert near(counts, RED) > 100, f"{name}: second series not drawn"
    blank = colours_in(rows, (642 + 70, 438 + 40, 500, 200))  # where no fourth plot is
    assert near(blank, BLUE) == 0 and near(blank, RED) == 0  # the check can tell blank areas
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    shutil.copy(shot.png, artifacts / "bench-report.png")


def test_experiment_errors_are_clear(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("model: rows\nfolder: .\nmatrix:\n  server: [{turbo: 1}]\n")
    result = run_bench("--experiment", str(tmp_path / "bad.yaml"))
    assert result.returncode == 1 and "unknown or fixed setting 'turbo'" in result.stderr
    (tmp_path / "both.yaml").write_text("model: rows\nfolder: .\ntarget: {url: localhost:1}\n")
    result = run_bench("--experiment", str(tmp_path / "both.yaml"))
    assert result.returncode == 1 and "exactly one of 'folder'" in result.stderr
    (tmp_path / "typo.yaml").write_text("model: rows\ntarget: {url: x}\nmatrx: {}\n")
    result = run_bench("--experiment", str(tmp_path / "typo.yaml"))
    assert result.returncode == 1 and "matrx" in result.stderr
