"""Answers with the id of the process that computed, and tells the test where it loaded.

``load`` appends this process's id to ``loads`` next to this file (``unload`` to
``unloads``), so a test counts the processes that loaded the model. A request with the
parameter ``hold`` waits until the test creates ``release`` here (appending its pid to
``started`` when it begins), so a test can keep calls in flight on a worker without
sleeping. ``predict_stream`` answers
each request with ``count`` chunks (its ``count`` parameter, 3 by default).
"""

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

from mlpack import MLModel
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput

HERE = Path(__file__).resolve().parent


def _answer(name: str, index: int = 0) -> InferenceResponse:
    return InferenceResponse(
        model_name=name,
        outputs=[
            ResponseOutput(name="pid", shape=[1], datatype="INT64", data=[os.getpid()]),
            ResponseOutput(name="index", shape=[1], datatype="INT64", data=[index]),
        ],
    )


class PidModel(MLModel):
    async def load(self) -> bool:
        with open(HERE / "loads", "a") as file:
            file.write(f"{os.getpid()}\n")
        return True

    async def unload(self) -> bool:
        with open(HERE / "unloads", "a") as file:
            file.write(f"{os.getpid()}\n")
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        parameters = payload.parameters.model_dump() if payload.parameters else {}
        if parameters.get("hold"):
            with open(HERE / "started", "a") as file:
                file.write(f"{os.getpid()}\n")
            for _ in range(6000):  # a bound for a test that never releases (60 s)
                if (HERE / "release").exists():
                    break
                await asyncio.sleep(0.01)
        return _answer(self.name)

    async def predict_stream(
        self, payloads: AsyncIterator[InferenceRequest]
    ) -> AsyncIterator[InferenceResponse]:
        async for payload in payloads:
            parameters = payload.parameters.model_dump() if payload.parameters else {}
            for index in range(int(parameters.get("count", 3))):
                yield _answer(self.name, index)
