"""Answers with the element count and integer sum of its first input (small reply, big request)."""

import numpy as np

from mlpack import MLModel
from mlpack.codecs.tensors import tensor_as_ndarray
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput


class TotalModel(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        array = tensor_as_ndarray(payload.inputs[0])
        total = int(array.sum(dtype=np.uint64))
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                ResponseOutput(name="total", shape=[2], datatype="UINT64", data=[array.size, total])
            ],
        )
