"""The model streams the README's example request token by token (no server is started)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from mlpack import ModelSettings
from mlpack.types import InferenceRequest

from models import Model

PROJECT = Path(__file__).resolve().parents[1]


def _request() -> InferenceRequest:
    return InferenceRequest.model_validate_json((PROJECT / "request.json").read_text())


async def _one(request: InferenceRequest) -> AsyncIterator[InferenceRequest]:
    yield request


async def _stream_and_predict(model: Model) -> tuple[list[str], str]:
    assert await model.load()
    tokens = [
        response.outputs[0].data[0]
        async for response in model.predict_stream(_one(_request()))
    ]
    whole = await model.predict(_request())
    return tokens, whole.outputs[0].data[0]


def test_streams_the_same_text_predict_answers() -> None:
    model = Model(ModelSettings.resolve(PROJECT / "model-settings.json"))
    tokens, whole = asyncio.run(_stream_and_predict(model))
    assert len(tokens) == 8  # max_tokens in request.json
    assert all(token.strip() for token in tokens)
    assert "".join(tokens) == whole
