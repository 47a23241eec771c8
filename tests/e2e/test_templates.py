"""Each ``mlpack init`` template end to end: generate, test, train, serve, infer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers.server import checkout_pythonpath, start_server

pytestmark = pytest.mark.e2e

# template → (output checked, its data for the README's request)
ANSWERS = {
    "custom": ("y", [2.0, 4.0, 6.0, 8.0]),
    "sklearn": ("predict", [0, 2]),
    "xgboost": ("predict", [1, 0]),
    "lightgbm": ("predict", [1, 0]),
    "onnx": ("label", [1, 0]),
    "mlflow": ("output-0", [1, 0]),
    "huggingface": ("label", ["positive", "negative"]),
    "stream": ("text_output", [" either. They knew only that the river"]),
}

# What each template's train.py and runtime import (all in the `test` extra).
NEEDS = {
    "sklearn": ["sklearn"],
    "xgboost": ["xgboost"],
    "lightgbm": ["lightgbm"],
    "onnx": ["onnxruntime", "skl2onnx"],
    "mlflow": ["mlflow", "sklearn", "skops"],
    "huggingface": ["torch", "transformers", "tokenizers"],
}


def _run(command: list[str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    environment["PYTHONPATH"] = checkout_pythonpath(environment.get("PYTHONPATH", ""))
    result = subprocess.run(
        command,
        check=False,
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.parametrize("template", list(ANSWERS))
def test_generated_project_tests_serves_and_answers(template: str, tmp_path: Path) -> None:
    for module in NEEDS.get(template, []):
        pytest.importorskip(module)
    project = tmp_path / f"{template}-model"
    batching = ["--batching"] if template in ("custom", "sklearn") else []
    _run(
        [
            sys.executable,
            "-m",
            "mlpack",
            "init",
            str(project),
            "--template",
            template,
            "--no-input",
            *batching,
        ],
        tmp_path,
    )
    name = json.loads((project / "model-settings.json").read_text())["name"]
    assert name == f"{template}-model"

    # README: pytest, then python train.py, then mlpack start ., then curl -d @request.json.
    _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], project)
    if (project / "train.py").exists():
        _run([sys.executable, "train.py"], project)
    server = start_server(project, tmp_path)
    try:
        response = httpx.post(
            f"{server.url}/v2/models/{name}/infer",
            content=(project / "request.json").read_bytes(),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        outputs = {output["name"]: output for output in response.json()["outputs"]}
        output_name, expected = ANSWERS[template]
        assert outputs[output_name]["data"] == expected
        metadata = httpx.get(f"{server.url}/v2/models/{name}").json()
        assert output_name in {output["name"] for output in metadata["outputs"]}
        if template == "stream":
            # The README's streaming calls: tokens one per event, the same text /infer gave.
            from mlpack.client import Client

            with Client(server.url) as client:
                tokens = [
                    chunk["text_output"]
                    for chunk in client.generate_stream(
                        name, "the keeper", {"max_tokens": 8, "seed": 1}
                    )
                ]
            assert len(tokens) == 8 and "".join(tokens) == expected[0]
        if template == "onnx":
            # Inputs come from the graph, so the server refuses what the graph cannot take.
            wrong = json.loads((project / "request.json").read_text())
            wrong["inputs"][0]["datatype"] = "FP64"
            refused = httpx.post(f"{server.url}/v2/models/{name}/infer", json=wrong, timeout=30)
            assert refused.status_code == 400 and "expects FP32" in refused.json()["error"]
    finally:
        server.stop()
