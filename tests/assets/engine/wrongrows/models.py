"""Returns one row too few whenever it is sent more than one row."""

import time

from mlpack import MLModel
from mlpack.codecs.tensors import tensor_as_ndarray
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput


class WrongRows(MLModel):
    def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = tensor_as_ndarray(payload.inputs[0])
        time.sleep(0.2)  # long enough that concurrent requests always queue and batch
        rows = x.shape[0] if x.shape[0] == 1 else x.shape[0] - 1
        return InferenceResponse(
            model_name=self.name,
            outputs=[ResponseOutput(name="y", shape=[rows], datatype="FP64", data=[1.0] * rows)],
        )
