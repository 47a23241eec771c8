"""A model that holds each request until the test creates ``release`` next to this file.

When compute starts it appends its process id to ``started``, so a test knows which
front-end holds the request (and that it was accepted) without sleeping.
"""

import asyncio
import os
from pathlib import Path

from mlpack import MLModel
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput

HERE = Path(__file__).resolve().parent


class GatedModel(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        with open(HERE / "started", "a") as file:
            file.write(f"{os.getpid()}\n")
        for _ in range(6000):  # a bound for a test that never releases (60 s)
            if (HERE / "release").exists():
                break
            await asyncio.sleep(0.01)
        return InferenceResponse(
            model_name=self.name,
            outputs=[ResponseOutput(name="pid", shape=[1], datatype="INT64", data=[os.getpid()])],
        )
