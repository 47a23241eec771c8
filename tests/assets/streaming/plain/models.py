"""A model without ``predict_stream``: stream requests to it are refused."""

from __future__ import annotations

from mlpack import MLModel
from mlpack.types import InferenceRequest, InferenceResponse


class Plain(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        return InferenceResponse(model_name=self.name, outputs=[])
