"""A synchronous model that blocks for the number of seconds it is sent.

With a ``hold`` parameter (a file path) it first creates ``<hold>.started``, then blocks
until the ``hold`` file exists (at most the seconds sent): gates the test reads and opens.
"""

import time
from pathlib import Path

from mlpack import MLModel
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput


class SlowModel(MLModel):
    def predict(self, payload: InferenceRequest) -> InferenceResponse:
        seconds = float(payload.inputs[0].data[0])
        hold = payload.parameters.model_dump().get("hold") if payload.parameters else None
        if hold:
            Path(f"{hold}.started").touch()
            deadline = time.monotonic() + seconds
            while not Path(hold).exists() and time.monotonic() < deadline:
                time.sleep(0.005)
        else:
            time.sleep(seconds)
        return InferenceResponse(
            model_name=self.name,
            outputs=[ResponseOutput(name="slept", shape=[1], datatype="FP64", data=[seconds])],
        )
