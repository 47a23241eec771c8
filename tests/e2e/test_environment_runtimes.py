"""A model with its own (requirements-file) environment can import every built-in runtime.

The server runs without the runtimes on PYTHONPATH, finding them as an installed mlpack
does (an editable install finds them through an import hook, which a worker started
with the environment's interpreter does not run): the worker must still see them all.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlpack.environments.runtimes import BUILTIN_RUNTIMES
from tests.helpers.server import REPO, RunningServer, start_server

pytestmark = pytest.mark.e2e

MODEL = """
import importlib
import sys

from mlpack import MLModel
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput


class RuntimesModel(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        found = []
        for spec in payload.inputs[0].data:
            package, _, cls = (spec.decode() if isinstance(spec, bytes) else spec).partition(".")
            module = importlib.import_module(package)
            found.append(f"{package}.{getattr(module, cls).__name__}")
        outputs = [
            ResponseOutput(name="classes", shape=[len(found)], datatype="BYTES", data=found),
            ResponseOutput(name="python", shape=[1], datatype="BYTES", data=[sys.executable]),
        ]
        return InferenceResponse(model_name=self.name, outputs=outputs)
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("served")
    model = root / "runtimes"
    model.mkdir()
    shutil.copy(REPO / "examples" / "multi-env" / "table_old" / "requirements.txt", model)
    (model / "models.py").write_text(MODEL)
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    packed = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlpack",
            "env",
            "pack",
            str(model),
            "-o",
            str(model / "env.tar.gz"),
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
    )
    assert packed.returncode == 0, packed.stderr
    (model / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "runtimes",
                "implementation": "models.RuntimesModel",
                "parameters": {"environment_tarball": "env.tar.gz"},
            }
        )
    )
    running = start_server(
        root,
        tmp_path_factory.mktemp("logs"),
        timeout=120,
        runtimes_on_path=False,
        env={"PYTHONPATH": ""},
    )
    yield running
    running.stop()


def test_environment_worker_imports_every_builtin_runtime(server: RunningServer) -> None:
    names = [runtime.implementation for runtime in BUILTIN_RUNTIMES]
    body = {
        "inputs": [{"name": "runtimes", "shape": [len(names)], "datatype": "BYTES", "data": names}]
    }
    response = httpx.post(server.url + "/v2/models/runtimes/infer", json=body, timeout=120)
    assert response.status_code == 200, response.text + server.log()[-3000:]
    outputs = {output["name"]: output["data"] for output in response.json()["outputs"]}
    assert outputs["classes"] == names
    # It ran in the model's own environment, not in the server's interpreter.
    assert Path(outputs["python"][0]).parents[1] != Path(sys.executable).parents[1]
    assert ".mlpack" in outputs["python"][0]
