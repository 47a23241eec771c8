"""MLflow's /invocations route on a real ``mlpack start``, answered as MLflow's own server does."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import pytest

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("sklearn")
pd = pytest.importorskip("pandas")
pytestmark = pytest.mark.filterwarnings("ignore:.*Add type hints:UserWarning")

from test_mlflow_runtime import save_iris, save_scorer


def mlflow_answer(folder: Path, body: bytes, content_type: str) -> tuple[int, Any]:
    """What MLflow's own scoring server code answers for ``body`` (run in this process)."""
    from mlflow.pyfunc import scoring_server

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = mlflow.pyfunc.load_model(str(folder))
        result = scoring_server.invocations(
            body, content_type, model, model.metadata.get_input_schema()
        )
    return result.status, json.loads(result.response)


@pytest.mark.e2e
def test_invocations_answers_like_mlflow_for_the_named_model(tmp_path: Path) -> None:
    import httpx

    from tests.helpers.server import start_server

    root = tmp_path / "models"
    _, frame = save_iris(root / "iris")
    save_scorer(root / "scorer", tmp_path / "code")
    for name in ("iris", "scorer"):
        (root / name / "model-settings.json").write_text(
            json.dumps({"name": name, "implementation": "mlpack_mlflow.MLflowModel"})
        )
    # Two models: /invocations serves the one model_routes names; a worker process runs them.
    settings = {"model_routes": ["scorer"], "parallel_workers": 1}
    server = start_server(root, tmp_path, settings=settings, timeout=180)
    try:
        url = f"{server.url}/invocations"
        scorer_bodies: list[tuple[Any, str]] = [
            (
                {
                    "dataframe_split": {
                        "columns": ["a", "b", "name"],
                        "data": [[1.5, 2, "x"], [0.25, 3, "héllo"]],
                    },
                    "params": {"scale": 2.0},
                },
                "application/json",
            ),
            ({"dataframe_records": [{"a": 1.0, "b": 1, "name": "r"}]}, "application/json"),
            ({"instances": [{"a": 2.0, "b": 5, "name": "i"}]}, "application/json"),
            ({"inputs": {"a": [3.0], "b": [4], "name": ["n"]}}, "application/json; charset=utf-8"),
            ("a,b,name\n1.5,2,x\n4,0,y\n", "text/csv"),
        ]
        for body, content_type in scorer_bodies:
            raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            answer = httpx.post(
                url, content=raw, headers={"content-type": content_type}, timeout=60
            )
            assert answer.status_code == 200, (body, answer.text)
            status, expected = mlflow_answer(root / "scorer", raw, content_type)
            assert status == 200
            assert answer.json() == expected, body
        assert httpx.post(url, content=json.dumps(scorer_bodies[0][0]), timeout=60).json()[
            "predictions"
        ][0] == {"total": 7.0, "label": "X"}  # no Content-Type: JSON

        # Clear 4xx answers, as {"error": ...}.
        refused = [
            (b"{}", "application/json", 400, "exactly one of"),
            (b"not json", "application/json", 400, "not valid JSON"),
            (
                json.dumps({"dataframe_records": [{"a": 1.0}]}).encode(),
                "application/json",
                400,
                "missing input(s) 'b', 'name'",
            ),
            (b"a,b,name\nx,1,y\n", "text/csv", 400, "CSV column 'a'"),
            (b"<xml/>", "application/xml", 415, "text/csv"),
        ]
        for raw, content_type, status, message in refused:
            answer = httpx.post(
                url, content=raw, headers={"content-type": content_type}, timeout=60
            )
            assert answer.status_code == status, answer.text
            assert message in answer.json()["error"]

        # The V2 routes still serve both models; the DataFrame answer says it is one.
        body = {
            "inputs": [
                {"name": c, "shape": [1], "datatype": "FP64", "data": [frame[c][0]]}
                for c in frame.columns
            ]
        }
        assert httpx.post(f"{server.url}/v2/models/iris/infer", json=body, timeout=60).is_success

        # Documented in OpenAPI, in the data plane and in the model's own document.
        document = httpx.get(f"{server.url}/v2/docs/dataplane.json", timeout=30).json()
        operation = document["paths"]["/invocations"]["post"]
        assert "scorer" in operation["summary"]
        assert set(operation["requestBody"]["content"]) == {"application/json", "text/csv"}
        own = httpx.get(f"{server.url}/v2/models/scorer/docs/dataplane.json", timeout=30).json()
        assert "/invocations" in own["paths"]
        other = httpx.get(f"{server.url}/v2/models/iris/docs/dataplane.json", timeout=30).json()
        assert "/invocations" not in other["paths"]
    finally:
        server.stop()


@pytest.mark.e2e
def test_without_model_routes_there_is_no_invocations_route(tmp_path: Path) -> None:
    import httpx

    from tests.helpers.server import start_server

    root = tmp_path / "models"
    _, frame = save_iris(root / "iris")
    (root / "iris" / "model-settings.json").write_text(
        json.dumps({"name": "iris", "implementation": "mlpack_mlflow.MLflowModel"})
    )
    server = start_server(root, tmp_path, timeout=180)
    try:
        csv = io.StringIO()
        frame.iloc[:2].to_csv(csv, index=False)
        answer = httpx.post(
            f"{server.url}/invocations",
            content=csv.getvalue(),
            headers={"content-type": "text/csv"},
            timeout=60,
        )
        assert answer.status_code == 404 and "no route" in answer.json()["error"]
    finally:
        server.stop()
