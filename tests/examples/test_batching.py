"""examples/batching: train.py, mlpack start models, python load_test.py (correctness only).

Whether batching is faster is measured by the benchmarks (``load_test.py --min-gain``),
not asserted here: this machine is small and shared.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers.server import REPO, start_server

pytestmark = pytest.mark.e2e
EXAMPLE = REPO / "examples" / "batching"


def test_load_test_gets_every_answer_right(tmp_path: Path) -> None:
    folder = shutil.copytree(
        EXAMPLE, tmp_path / "batching", ignore=shutil.ignore_patterns("model.joblib")
    )
    subprocess.run(
        [sys.executable, "train.py"], cwd=folder, check=True, capture_output=True, timeout=120
    )
    server = start_server(folder / "models", tmp_path)
    try:
        for name in ("forest", "forest-batched"):
            metadata = httpx.get(f"{server.url}/v2/models/{name}")
            assert metadata.status_code == 200, metadata.text
        settings = (folder / "models" / "batched" / "model-settings.json").read_text()
        assert '"max_batch_size": 32' in settings
        result = subprocess.run(
            [sys.executable, "load_test.py", "--url", server.url, "-n", "32", "-c", "8"],
            check=False,
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.count(" 0 wrong answers") == 2
        assert "adaptive batching:" in result.stdout
    finally:
        server.stop()
