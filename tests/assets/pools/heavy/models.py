"""Holds a large numpy array (``parameters.extra.megabytes``, filled so its pages are
resident) and answers with the pid that ran it, the pid that loaded it and the array's size.
An input value above 0 makes it hold the request that many seconds (so calls overlap)."""

import os
import time

import numpy as np

from mlpack import MLModel
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput


class HeavyModel(MLModel):
    def load(self) -> bool:
        megabytes = int(self.settings.parameters.extra.get("megabytes", 1))
        self.weights = np.full(megabytes * 2**20 // 8, 1.0)  # written once: resident pages
        self.loaded_in = os.getpid()
        return True

    def predict(self, payload: InferenceRequest) -> InferenceResponse:
        hold = float(payload.inputs[0].data[0]) if payload.inputs else 0.0
        if hold > 0:
            time.sleep(min(hold, 5.0))
        pid = ResponseOutput(name="pid", shape=[1], datatype="INT64", data=[os.getpid()])
        loaded = ResponseOutput(
            name="loaded_in", shape=[1], datatype="INT64", data=[self.loaded_in]
        )
        size = ResponseOutput(name="size", shape=[1], datatype="INT64", data=[self.weights.size])
        return InferenceResponse(model_name=self.name, outputs=[pid, loaded, size])
