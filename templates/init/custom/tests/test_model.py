"""The model answers the README's example request (no server is started)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mlpack import ModelSettings
from mlpack.types import InferenceRequest

from models import Model

PROJECT = Path(__file__).resolve().parents[1]


def test_example_request() -> None:
    model = Model(ModelSettings.resolve(PROJECT / "model-settings.json"))
    assert asyncio.run(model.load())
    request = InferenceRequest.model_validate_json((PROJECT / "request.json").read_text())
    response = asyncio.run(model.predict(request))
    [output] = response.outputs
    assert output.name == "y" and output.shape == [2, 2]
    assert output.data == [2.0, 4.0, 6.0, 8.0]
