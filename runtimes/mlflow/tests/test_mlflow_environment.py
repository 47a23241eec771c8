"""An MLflow model's own requirements.txt, honoured when asked (parameters.mlflow_environment).

The model needs tabulate, a tiny pure-Python package the server lacks; MLflow writes it (and
its own pin) into the folder's requirements.txt. ``mlpack start`` builds the environment from
that file with the real package index (the MLflow pin is left to the server, which runs the
same MLflow), and the model answers from a worker in that environment.
"""

from __future__ import annotations

import json
import textwrap
import time
import warnings
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("pandas")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(600),
    pytest.mark.filterwarnings("ignore:.*Add type hints:UserWarning"),
]

TABLE_CODE = textwrap.dedent("""
    import sys

    import mlflow
    import pandas as pd


    class Table(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            import tabulate

            rows = len(model_input)
            return pd.DataFrame(
                {"tabulate_version": [tabulate.__version__] * rows, "prefix": [sys.prefix] * rows}
            )


    mlflow.models.set_model(Table())
""")


def save_table_model(folder: Path, code_dir: Path) -> None:
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    code_dir.mkdir(parents=True, exist_ok=True)
    (code_dir / "table.py").write_text(TABLE_CODE)
    signature = ModelSignature(
        inputs=Schema([ColSpec("long", "x")]),
        outputs=Schema([ColSpec("string", "tabulate_version"), ColSpec("string", "prefix")]),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.pyfunc.save_model(
            str(folder),
            python_model=str(code_dir / "table.py"),
            signature=signature,
            pip_requirements=["tabulate==0.9.0"],
        )


def test_start_builds_the_mlflow_models_own_environment(tmp_path: Path) -> None:
    import httpx

    from tests.helpers.server import start_server

    try:
        import tabulate  # noqa: F401

        pytest.skip("the server's Python has tabulate: the test needs a package the server lacks")
    except ImportError:
        pass
    root = tmp_path / "models"
    save_table_model(root / "table", tmp_path / "code")
    requirements = (root / "table" / "requirements.txt").read_text()
    assert "tabulate==0.9.0" in requirements and "mlflow==" in requirements  # MLflow's record
    (root / "table" / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "table",
                "implementation": "mlpack_mlflow.MLflowModel",
                "parameters": {"mlflow_environment": True},
            }
        )
    )
    envs = tmp_path / "envs"
    server = start_server(
        root, tmp_path, settings={"environments_dir": str(envs)}, wait_ready=False
    )
    try:
        deadline = time.monotonic() + 400
        state = ""
        while time.monotonic() < deadline and state not in ("READY", "UNAVAILABLE"):
            index = httpx.post(f"{server.url}/v2/repository/index", timeout=30).json()
            state = next((i["state"] for i in index if i["name"] == "table"), "")
            time.sleep(0.2)
        assert state == "READY", server.log()
        answer = httpx.post(
            f"{server.url}/v2/models/table/infer",
            timeout=60,
            json={"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [1]}]},
        )
        assert answer.status_code == 200, answer.text + server.log()
        outputs = {o["name"]: o["data"][0] for o in answer.json()["outputs"]}
    finally:
        server.stop()
    assert outputs["tabulate_version"] == "0.9.0"
    assert outputs["prefix"].startswith(str(envs / "requirements-")), outputs
    log = server.log()
    assert "model 'table' uses environment requirements" in log
    assert "parameters.mlflow_environment" in log
