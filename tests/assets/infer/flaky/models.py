"""Echoes its inputs, but answers 503 to calls 1-4 of every 10 (an overloaded server)."""

import itertools

from mlpack import MLModel
from mlpack.codecs.tensors import ndarray_to_data, tensor_as_ndarray
from mlpack.errors import ModelNotReady
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput


class FlakyModel(MLModel):
    async def load(self) -> bool:
        self._calls = itertools.count()
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        if next(self._calls) % 10 < 4:
            raise ModelNotReady("model 'flaky' is overloaded, try again")
        arrays = [tensor_as_ndarray(i) for i in payload.inputs]
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
