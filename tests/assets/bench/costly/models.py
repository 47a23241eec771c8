"""A model with a known cost: ``call_ms`` per call plus ``row_ms`` per row (waiting, not computing).

It sleeps rather than spins, so its cost holds on a busy machine and its best batching
setting is known by construction: a batch of k rows takes call_ms + k * row_ms.
"""

import time

from mlpack import MLModel
from mlpack.codecs.tensors import tensor_as_ndarray
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput


class CostlyModel(MLModel):
    async def load(self) -> bool:
        extra = self.settings.parameters.extra if self.settings.parameters else None
        extra = extra or {}
        self.call_s = float(extra.get("call_ms", 40)) / 1000
        self.row_s = float(extra.get("row_ms", 1)) / 1000
        return True

    def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = tensor_as_ndarray(payload.inputs[0])
        time.sleep(self.call_s + self.row_s * len(x))
        return InferenceResponse(
            model_name=self.name,
            outputs=[ResponseOutput(name="y", shape=list(x.shape), datatype="FP32", data=x.reshape(-1))],
        )
