"""A model that holds every call at a gate the test controls (files in a folder).

``parameters.extra.gate`` names the folder. Each call writes ``started-<pid>-<n>`` holding
its row count, then waits until ``open`` exists there (at most 60 s, a net for a broken
test), then echoes input ``x``. A test counts the started files and opens the gate.
"""

import itertools
import os
import time
from pathlib import Path

from mlpack import MLModel
from mlpack.codecs.tensors import ndarray_to_data, tensor_as_ndarray
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput


class GateModel(MLModel):
    async def load(self) -> bool:
        self.gate = Path(self.settings.parameters.extra["gate"])
        self.calls = itertools.count()
        return True

    def predict(self, payload: InferenceRequest) -> InferenceResponse:
        array = tensor_as_ndarray(payload.inputs[0])
        started = self.gate / f"started-{os.getpid()}-{next(self.calls)}"
        started.write_text(str(array.shape[0]))
        deadline = time.monotonic() + 60
        while not (self.gate / "open").exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                ResponseOutput(
                    name="x",
                    shape=list(array.shape),
                    datatype=payload.inputs[0].datatype,
                    data=ndarray_to_data(array),
                )
            ],
        )
