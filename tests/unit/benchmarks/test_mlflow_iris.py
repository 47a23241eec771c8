"""benchmarks/mlflow_iris: the scenario's mlpack side, run for real and briefly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("mlflow")
pytest.importorskip("skops")

from benchmarks import mlflow_iris


def test_request_has_one_column_per_signature_input() -> None:
    body = json.loads(mlflow_iris.request_body())
    assert [i["name"] for i in body["inputs"]] == mlflow_iris.COLUMNS
    assert all(i["shape"] == [1] and i["datatype"] == "FP64" for i in body["inputs"])


@pytest.mark.e2e
def test_mlpack_side_runs_and_answers(tmp_path: Path) -> None:
    output = tmp_path / "result.json"
    code = mlflow_iris.main(
        ["--only", "mlpack", "-d", "0.5", "-r", "1", "-c", "1", "-w", "0", "-o", str(output)]
    )
    assert code == 0
    report = json.loads(output.read_text())
    run = report["results"]["mlpack"]["c1"]
    assert run["errors"] == 0 and run["rps"] > 0
    assert report["servers"]["mlpack"]["start_s"] > 0
