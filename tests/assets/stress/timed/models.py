"""A plain-function model the test drives through files.

Parameters: ``marker`` names a file that gets ``started V`` when compute begins and
``done V`` when it ends (V is the request's first value); ``gate`` names a file the model
waits for (instead of sleeping V seconds), so a test holds the model as long as it likes.
"""

import os
import time

from mlpack import MLModel
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput


def _note(path, line):
    if path:
        with open(path, "a") as file:
            file.write(line + "\n")


class GatedModel(MLModel):
    def predict(self, payload: InferenceRequest) -> InferenceResponse:
        parameters = payload.parameters
        marker = getattr(parameters, "marker", None) if parameters else None
        gate = getattr(parameters, "gate", None) if parameters else None
        value = float(payload.inputs[0].data[0])
        _note(marker, f"started {value:g}")
        if gate:
            for _ in range(6000):  # at most 60 s: a safety net for a broken test
                if os.path.exists(gate):
                    break
                time.sleep(0.01)
        else:
            time.sleep(value)
        _note(marker, f"done {value:g}")
        return InferenceResponse(
            model_name=self.name,
            outputs=[ResponseOutput(name="value", shape=[1], datatype="FP64", data=[value])],
        )
