"""Echoes its inputs after a delay set by the first value (0-12 ms), so answers overtake."""

import asyncio

from mlpack import MLModel
from mlpack.codecs.tensors import ndarray_to_data, tensor_as_ndarray
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput


class JitterModel(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        arrays = [tensor_as_ndarray(i) for i in payload.inputs]
        first = float(arrays[0].reshape(-1)[0]) if arrays[0].size else 0.0
        await asyncio.sleep((int(abs(first) * 7) % 7) * 0.002)
        return InferenceResponse(
            model_name=self.name,
            id=payload.id,
            outputs=[
                ResponseOutput(
                    name=i.name, shape=list(a.shape), datatype=i.datatype, data=ndarray_to_data(a)
                )
                for i, a in zip(payload.inputs, arrays, strict=True)
            ],
        )
