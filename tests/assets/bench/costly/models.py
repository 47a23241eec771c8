"""A model whose best batch size is known by construction.

A call costs ``call_ms``, plus ``row_ms`` for every row past ``free_rows`` (think of a
device that holds ``free_rows`` rows at once). Batches of exactly ``free_rows`` rows give
the most rows per second; every larger batch of k rows gives k / (call + (k - free) * row),
far less with the defaults (20 ms, 4 rows, 40 ms: 200 rows/s at 4 rows, at most 83 at 5+).
It waits rather than spins, so its costs hold on a busy machine.
"""

import time

from mlpack import MLModel
from mlpack.codecs.tensors import tensor_as_ndarray
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput


class CostlyModel(MLModel):
    async def load(self) -> bool:
        extra = (self.settings.parameters.extra if self.settings.parameters else None) or {}
        self.call_s = float(extra.get("call_ms", 20)) / 1000
        self.free_rows = int(extra.get("free_rows", 4))
        self.row_s = float(extra.get("row_ms", 40)) / 1000
        return True

    def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = tensor_as_ndarray(payload.inputs[0])
        time.sleep(self.call_s + self.row_s * max(0, len(x) - self.free_rows))
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                ResponseOutput(name="y", shape=list(x.shape), datatype="FP32", data=x.reshape(-1))
            ],
        )
