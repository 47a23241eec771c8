"""examples/mlflow: train.py, mlpack start, the README's requests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers.server import REPO, start_server

pytestmark = pytest.mark.e2e
EXAMPLE = REPO / "examples" / "mlflow"


def test_readme_requests(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    pytest.importorskip("skops")
    folder = shutil.copytree(EXAMPLE, tmp_path / "mlflow", ignore=shutil.ignore_patterns("model"))
    subprocess.run(
        [sys.executable, "train.py"], cwd=folder, check=True, capture_output=True, timeout=300
    )
    # The README's "coming from mlflow models serve": /invocations for this model.
    server = start_server(folder, tmp_path, settings={"model_routes": ["iris-mlflow"]}, timeout=180)
    try:
        metadata = httpx.get(f"{server.url}/v2/models/iris-mlflow", timeout=30).json()
        assert [i["name"] for i in metadata["inputs"]] == [
            "sepal_length",
            "sepal_width",
            "petal_length",
            "petal_width",
        ]
        assert metadata["outputs"] == [{"name": "output-0", "datatype": "BYTES", "shape": [-1]}]
        assert metadata["parameters"] == {"content_type": "pd"}
        url = f"{server.url}/v2/models/iris-mlflow/infer"
        response = httpx.post(
            url,
            content=(folder / "request.json").read_bytes(),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        assert response.json()["outputs"] == [
            {"name": "output-0", "shape": [2], "datatype": "BYTES", "data": ["setosa", "virginica"]}
        ]
        refused = httpx.post(
            url,
            timeout=30,
            json={
                "inputs": [
                    {"name": "sepal_length", "shape": [1], "datatype": "FP64", "data": [5.1]}
                ]
            },
        )
        assert refused.status_code == 400 and "petal_width" in refused.json()["error"]
        scored = httpx.post(
            f"{server.url}/invocations",
            timeout=30,
            json={
                "dataframe_split": {
                    "columns": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
                    "data": [[5.1, 3.5, 1.4, 0.2]],
                }
            },
        )
        assert scored.status_code == 200, scored.text
        assert scored.json() == {"predictions": ["setosa"]}
    finally:
        server.stop()
