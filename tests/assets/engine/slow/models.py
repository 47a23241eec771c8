"""A synchronous model that blocks for the number of seconds it is sent."""

import time

from mlpack import MLModel
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput


class SlowModel(MLModel):
    def predict(self, payload: InferenceRequest) -> InferenceResponse:
        seconds = float(payload.inputs[0].data[0])
        time.sleep(seconds)
        return InferenceResponse(
            model_name=self.name,
            outputs=[ResponseOutput(name="slept", shape=[1], datatype="FP64", data=[seconds])],
        )
