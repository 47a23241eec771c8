"""Doubles ``x`` row by row and reports the rows of the batch it saw; ``sleep`` parameter in s."""

import time

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
