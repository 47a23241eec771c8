"""A synchronous model that blocks for the number of seconds it is sent.

If the request's parameters name a ``marker`` file, a line is appended to it when
compute starts, so tests can tell a request was accepted without sleeping.
"""

import time

from mlpack import MLModel
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput


class SlowModel(MLModel):
    def predict(self, payload: InferenceRequest) -> InferenceResponse:
        marker = getattr(payload.parameters, "marker", None) if payload.parameters else None
        if marker:
            with open(marker, "a") as file:
                file.write("started\n")
        seconds = float(payload.inputs[0].data[0])
        time.sleep(seconds)
        return InferenceResponse(
            model_name=self.name,
            outputs=[ResponseOutput(name="slept", shape=[1], datatype="FP64", data=[seconds])],
        )
