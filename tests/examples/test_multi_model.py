"""examples/multi-model: train.py, mlpack start models, the README's requests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest

from tests.helpers.server import REPO, start_server

pytestmark = pytest.mark.e2e
EXAMPLE = REPO / "examples" / "multi-model"


def test_versions_and_models_side_by_side(tmp_path: Path) -> None:
    folder = shutil.copytree(EXAMPLE, tmp_path / "multi-model")
    subprocess.run(
        [sys.executable, "train.py"], cwd=folder, check=True, capture_output=True, timeout=120
    )
    request = (folder / "request.json").read_bytes()
    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
    server = start_server(folder / "models", tmp_path)
    try:
        index = httpx.post(server.url + "/v2/repository/index").json()
        assert sorted((item["name"], item.get("version"), item["state"]) for item in index) == [
            ("doubler", "", "READY"),
            ("iris", "1", "READY"),
            ("iris", "2", "READY"),
        ]
        assert httpx.get(server.url + "/v2/models/iris").json()["versions"] == ["1", "2"]

        headers = {"Content-Type": "application/json"}
        newest = httpx.post(
            server.url + "/v2/models/iris/infer", content=request, headers=headers
        ).json()
        assert newest["model_version"] == "2"
        assert [o["name"] for o in newest["outputs"]] == ["predict", "predict_proba"]
        v2 = joblib.load(folder / "models" / "iris" / "v2" / "model.joblib")
        assert newest["outputs"][0]["data"] == v2.predict(rows).tolist()

        first = httpx.post(
            server.url + "/v2/models/iris/versions/1/infer", content=request, headers=headers
        ).json()
        assert first["model_version"] == "1"
        v1 = joblib.load(folder / "models" / "iris" / "v1" / "model.joblib")
        assert first["outputs"][0]["data"] == v1.predict(rows).tolist() == [0, 2]

        doubled = httpx.post(
            server.url + "/v2/models/doubler/infer",
            json={"inputs": [{"name": "x", "shape": [3], "datatype": "FP64", "data": [1, 2, 3]}]},
        ).json()
        assert doubled["outputs"][0]["data"] == [2.0, 4.0, 6.0]

        assert httpx.post(server.url + "/v2/repository/models/iris/load").status_code == 200
        assert httpx.post(server.url + "/v2/repository/models/doubler/unload").status_code == 200
        assert httpx.post(
            server.url + "/v2/models/doubler/infer",
            json={"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1]}]},
        ).status_code in (404, 503)
    finally:
        server.stop()
