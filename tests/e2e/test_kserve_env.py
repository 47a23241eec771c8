"""KServe's way of starting a server: environment only, a model folder URI, SIGTERM drain."""

from __future__ import annotations

import os
import shutil
import signal
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.server import ASSETS, start_server

pytestmark = pytest.mark.e2e


def train_iris(destination: Path) -> None:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    destination.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(features, labels), destination)


IRIS_ROWS = {
    "inputs": [
        {
            "name": "x",
            "shape": [2, 4],
            "datatype": "FP64",
            "data": [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3],
        }
    ]
}


def test_sklearn_model_from_mlserver_variables_and_a_folder_uri(tmp_path: Path) -> None:
    mounted = tmp_path / "mnt" / "models"
    train_iris(mounted / "model.joblib")
    app = tmp_path / "app"
    app.mkdir()
    env = {
        "MLSERVER_MODEL_IMPLEMENTATION": "mlserver_sklearn.SKLearnModel",
        "MLSERVER_MODEL_NAME": "iris-isvc",
        "MLSERVER_MODEL_URI": str(mounted),
        "MLSERVER_GZIP_ENABLED": "true",
    }
    server = start_server(app, tmp_path, env=env)
    try:
        response = httpx.post(f"{server.url}/v2/models/iris-isvc/infer", json=IRIS_ROWS, timeout=30)
        assert response.status_code == 200, response.text
        assert response.json()["outputs"][0]["data"] == [0, 2]
    finally:
        assert server.stop() == 0
    log = server.log()
    assert "MLSERVER_MODEL_URI used as MLPACK_MODEL_URI" in log
    assert log.count("'gzip_enabled'") == 1


def test_no_model_anywhere_names_both_ways(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.helpers.server import checkout_pythonpath

    result = subprocess.run(
        [sys.executable, "-m", "mlpack", "start", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": checkout_pythonpath()},
        timeout=120,
    )
    assert result.returncode == 2
    assert "MLSERVER_MODEL_IMPLEMENTATION" in result.stderr


def test_sigterm_drain_keeps_serving_while_not_ready(tmp_path: Path) -> None:
    """SIGTERM → readiness 503 at once, requests still served, in-flight work finishes, exit 0."""
    app = tmp_path / "app"
    app.mkdir()
    shutil.copy(ASSETS / "models" / "slow" / "models.py", app / "models.py")
    env = {
        "MLPACK_MODEL_IMPLEMENTATION": "models.SlowModel",
        "MLPACK_MODEL_NAME": "slow",
        "MLPACK_DRAIN_DELAY": "6",
    }
    server = start_server(app, tmp_path, env=env)
    results: dict[str, Any] = {}

    def slow_request() -> None:
        body = {"inputs": [{"name": "s", "shape": [1], "datatype": "FP64", "data": [8.0]}]}
        try:
            results["slow"] = httpx.post(
                f"{server.url}/v2/models/slow/infer", json=body, timeout=120
            ).status_code
        except httpx.HTTPError as error:
            results["slow"] = repr(error)

    try:
        os.killpg(server.process.pid, signal.SIGTERM)
        statuses = []
        with httpx.Client(timeout=10) as client:
            for _ in range(500):
                statuses.append(client.get(f"{server.url}/v2/health/ready").status_code)
                if statuses[-1] == 503:
                    break
            assert statuses[-1] == 503, statuses
            # Still serving: a request sent after readiness went false is answered,
            # and one that outlasts the drain delay finishes before the process exits.
            worker = threading.Thread(target=slow_request)
            worker.start()
            body = {"inputs": [{"name": "s", "shape": [1], "datatype": "FP64", "data": [0.0]}]}
            assert client.post(f"{server.url}/v2/models/slow/infer", json=body).status_code == 200
            assert client.get(f"{server.url}/v2/health/live").status_code == 200
        worker.join(120)
        assert server.process.wait(120) == 0
        assert results["slow"] == 200, results
    finally:
        server.stop(signal.SIGKILL)
    assert "draining: readiness is false" in server.log()
