"""Models written for MLServer, unchanged, served by mlpack over a real server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_kserve_env import IRIS_ROWS, train_iris
from tests.helpers.server import ASSETS, start_server

pytestmark = pytest.mark.e2e


@pytest.fixture
def mlserver_models(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    shutil.copytree(ASSETS / "mlserver_models", folder)
    train_iris(folder / "iris_custom" / "artefacts" / "model.joblib")
    train_iris(folder / "sklearn_subclass" / "model.joblib")
    return folder


@pytest.mark.parametrize("workers", [0, 1], ids=["in-process", "worker-process"])
def test_mlserver_documentation_models_serve_unchanged(
    mlserver_models: Path, tmp_path: Path, workers: int
) -> None:
    server = start_server(mlserver_models, tmp_path, args=("--parallel-workers", str(workers)))
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            # get_model_uri + NumpyCodec / NumpyRequestCodec
            response = client.post("/v2/models/iris-custom/infer", json=IRIS_ROWS)
            assert response.status_code == 200, response.text
            assert response.json()["outputs"][0]["data"] == [0, 2]
            # decode_args with a List[str] and an np.ndarray argument
            body = {
                "inputs": [
                    {
                        "name": "questions",
                        "shape": [2],
                        "datatype": "BYTES",
                        "data": ["abc", "hello"],
                        "parameters": {"content_type": "str"},
                    },
                    {"name": "weights", "shape": [2], "datatype": "FP64", "data": [1.0, 0.5]},
                ]
            }
            response = client.post("/v2/models/questions/infer", json=body)
            assert response.status_code == 200, response.text
            assert response.json()["outputs"][0]["data"] == [6.0, 5.0]
            # StringCodec, types.Parameters, mlserver.errors → a 400 with the model's message
            hello = {
                "inputs": [
                    {
                        "name": "json",
                        "shape": [1],
                        "datatype": "BYTES",
                        "data": [json.dumps({"name": "KServe"})],
                    }
                ]
            }
            response = client.post("/v2/models/json-hello/infer", json=hello)
            assert response.status_code == 200, response.text
            greeting = json.loads(response.json()["outputs"][0]["data"][0])
            assert greeting == {"greeting": "Hello KServe", "model": "json-hello"}
            bad = {"inputs": [{"name": "json", "shape": [1], "datatype": "BYTES", "data": ["{}"]}]}
            response = client.post("/v2/models/json-hello/infer", json=bad)
            assert response.status_code == 400
            assert response.json() == {"error": "the request needs a 'name'"}
            # A subclass of mlserver_sklearn.SKLearnModel
            response = client.post("/v2/models/iris-proba/infer", json=IRIS_ROWS)
            assert response.status_code == 200, response.text
            output = response.json()["outputs"][0]
            assert output["name"] == "predict_proba" and output["shape"] == [2, 3]
    finally:
        assert server.stop() == 0
    assert "questions model loaded with scale 2" in server.log()


def test_compat_turned_off_gives_the_plain_import_error(
    mlserver_models: Path, tmp_path: Path
) -> None:
    for name in ("questions", "sklearn_subclass", "iris_custom"):
        shutil.rmtree(mlserver_models / name)
    server = start_server(
        mlserver_models, tmp_path, env={"MLPACK_MLSERVER_COMPAT": "0"}, wait_ready=False
    )
    try:
        response = httpx.get(f"{server.url}/v2/models/json-hello/ready", timeout=30)
        for _ in range(600):
            if "json-hello" in server.log() and "mlserver" in server.log():
                break
            response = httpx.get(f"{server.url}/v2/models/json-hello/ready", timeout=30)
        assert response.status_code != 200
    finally:
        server.stop()
    assert "No module named 'mlserver'" in server.log()
