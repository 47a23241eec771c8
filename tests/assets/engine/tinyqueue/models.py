"""Doubles ``x`` row by row and reports the rows of the batch it saw; ``sleep`` parameter in s.

``RecordingModel`` also appends every value it is asked to compute to ``computed.txt`` beside
this file, and holds a call whose ``hold`` parameter names a file until that file exists:
events a test controls and reads, instead of timing.
"""

import time
from pathlib import Path

import numpy as np

from mlpack import MLModel
from mlpack.codecs.tensors import tensor_as_ndarray
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput


class BatchedModel(MLModel):
    def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = tensor_as_ndarray(payload.inputs[0])
        sleep = (
            payload.parameters.model_dump().get("sleep") if payload.parameters else None
        ) or 0.02
        time.sleep(max(sleep) if isinstance(sleep, list) else sleep)
        rows = x.shape[0]
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                ResponseOutput(
                    name="doubled", shape=list(x.shape), datatype="FP64", data=(x * 2).reshape(-1)
                ),
                ResponseOutput(
                    name="batch_rows", shape=[rows], datatype="INT64", data=np.full(rows, rows)
                ),
            ],
        )


RECORD = Path(__file__).with_name("computed.txt")
HOLD_LIMIT = 120.0  # s: a held call never outlives a test that forgot to release it


class RecordingModel(BatchedModel):
    def predict(self, payload: InferenceRequest) -> InferenceResponse:
        values = tensor_as_ndarray(payload.inputs[0]).reshape(-1).tolist()
        with RECORD.open("a") as record:
            record.write("".join(f"{value}\n" for value in values))
        parameters = payload.parameters.model_dump() if payload.parameters else {}
        holds = parameters.get("hold") or []
        for hold in holds if isinstance(holds, list) else [holds]:
            deadline = time.monotonic() + HOLD_LIMIT
            while hold and not Path(hold).exists() and time.monotonic() < deadline:
                time.sleep(0.005)
        return super().predict(payload)
