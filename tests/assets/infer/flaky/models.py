"""Echoes its inputs, but answers 503 during the first 0.4 s of every 1 s (an overloaded server)."""

import time

from mlpack import MLModel
from mlpack.codecs.tensors import ndarray_to_data, tensor_as_ndarray
from mlpack.errors import ModelNotReady
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput


class FlakyModel(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        if time.monotonic() % 1.0 < 0.4:
            raise ModelNotReady("model 'flaky' is overloaded, try again")
        arrays = [tensor_as_ndarray(i) for i in payload.inputs]
        return InferenceResponse(
            model_name=self.name, id=payload.id,
            outputs=[ResponseOutput(name=i.name, shape=list(a.shape), datatype=i.datatype,
                                    data=ndarray_to_data(a)) for i, a in zip(payload.inputs, arrays)],
        )
