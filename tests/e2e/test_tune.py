"""``mlpack tune`` on a model whose best batch size is known by construction."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.bench import run_mlpack
from tests.helpers.server import ASSETS

pytestmark = pytest.mark.e2e

# tests/assets/bench/costly: a call costs 20 ms + 40 ms per row past 4 rows. At 8 requests in
# flight (1 row each) max_batch_size=4 gives 4 rows / 20 ms = 200 rows/s; a batch of k > 4
# rows gives k / (20 + 40 (k - 4)) ms <= 83 rows/s; 2 rows give 100, 1 row 50.
# max_batch_time hardly matters (the queue always holds 4 requests).
SPACE = ["--space", "max_batch_size=1,2,4,8,16,32", "--space", "max_batch_time=0,0.002,0.01"]
GRID = 18


def rows_per_s(batch_size: int, in_flight: int = 8) -> float:
    k = min(batch_size, in_flight)
    return k / (0.020 + 0.040 * max(0, k - 4))


def run_tune(*args: str) -> subprocess.CompletedProcess[str]:
    return run_mlpack("tune", *args)


def test_tune_finds_the_known_best_with_a_third_of_the_grid(tmp_path: Path) -> None:
    folder = tmp_path / "costly"
    shutil.copytree(ASSETS / "bench" / "costly", folder)
    out = tmp_path / "tune.json"
    result = run_tune(
        str(folder),
        "--slo-p99",
        "2s",
        "-c",
        "8",
        *SPACE,
        "-d",
        "2",
        "-w",
        "0.5",
        "--json",
        str(out),
        "--write",
    )
    assert result.returncode == 0, result.stderr + result.stdout
    report = json.loads(out.read_text())
    why = result.stdout + json.dumps(report["trials"], indent=1)
    assert report["grid"] == GRID and report["measurements"] <= GRID // 3
    best = report["best"]["settings"]
    best_in_grid = max(rows_per_s(b) for b in (1, 2, 4, 8, 16, 32))
    assert rows_per_s(best["max_batch_size"]) >= 0.9 * best_in_grid, why
    # The server saw full batches of the recommended size (its own statistics).
    assert all(s["avg_batch"] > 3 for s in report["best"]["server"]), why
    assert "Recommended: max_batch_size=4" in result.stdout and "| Pareto |" in result.stdout
    # --write put the recommendation into the folder and showed the diff.
    settings = json.loads((folder / "model-settings.json").read_text())
    assert settings["max_batch_size"] == 4 and settings["max_batch_time"] == best["max_batch_time"]
    assert '+  "max_batch_size": 4' in result.stdout


def test_tune_errors_are_clear(tmp_path: Path) -> None:
    folder = tmp_path / "costly"
    shutil.copytree(ASSETS / "bench" / "costly", folder)
    bad_slo = run_tune(str(folder), "--slo-p99", "soon")
    assert bad_slo.returncode == 1 and "'soon' is not a duration" in bad_slo.stderr
    bad_space = run_tune(str(folder), "--slo-p99", "25ms", "--space", "turbo=1,2")
    assert bad_space.returncode == 1 and "'turbo'" in bad_space.stderr
    other = run_tune(str(folder), "--slo-p99", "25ms", "-m", "nope")
    assert other.returncode == 1 and "no model 'nope'" in other.stderr
    # Nothing can meet 1 ms (a call takes 20 ms): exit 1, the closest shown first.
    none = run_tune(
        str(folder),
        "--slo-p99",
        "1ms",
        "-c",
        "2",
        "--space",
        "max_batch_size=1,4",
        "--budget",
        "1",
        "-d",
        "0.5",
        "-w",
        "0",
    )
    assert none.returncode == 1 and "No setting met p99 <= 1 ms" in none.stderr
    assert "| 1 | max_batch_size=" in none.stdout
