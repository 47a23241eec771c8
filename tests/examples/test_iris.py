"""examples/iris: train.py, mlpack start, the README's curl requests."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers.server import REPO, start_server

pytestmark = pytest.mark.e2e
EXAMPLE = REPO / "examples" / "iris"


def test_readme_requests(tmp_path: Path) -> None:
    folder = shutil.copytree(
        EXAMPLE, tmp_path / "iris", ignore=shutil.ignore_patterns("model.joblib")
    )
    subprocess.run(
        [sys.executable, "train.py"], cwd=folder, check=True, capture_output=True, timeout=120
    )
    server = start_server(folder, tmp_path)
    try:
        url = f"{server.url}/v2/models/iris/infer"
        rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
        body = httpx.post(
            url, json={"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": rows}]}
        ).json()
        assert body["model_version"] == "v1"
        assert body["outputs"] == [
            {"name": "predict", "shape": [2, 1], "datatype": "INT64", "data": [0, 2]}
        ]
        both = httpx.post(
            url,
            json={
                "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": rows[0]}],
                "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
            },
        ).json()
        assert [o["name"] for o in both["outputs"]] == ["predict", "predict_proba"]
        assert math.isclose(sum(both["outputs"][1]["data"]), 1.0)
    finally:
        server.stop()
