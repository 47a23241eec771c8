"""A plain-generator ``predict_stream``: runs on the model's thread (in a worker: the
worker process's main thread); reports the thread and process it ran in."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

from mlpack import MLModel
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput


class SyncStreamer(MLModel):
    def predict_stream(  # type: ignore[override]
        self, payloads: Iterator[InferenceRequest]
    ) -> Iterator[InferenceResponse]:
        for payload in payloads:
            count = int(payload.inputs[0].data[0])
            for index in range(count):
                thread = threading.current_thread().name
                yield InferenceResponse(
                    model_name=self.name,
                    outputs=[
                        ResponseOutput(name="index", shape=[1], datatype="INT64", data=[index]),
                        ResponseOutput(name="thread", shape=[1], datatype="BYTES", data=[thread]),
                        ResponseOutput(name="pid", shape=[1], datatype="INT64", data=[os.getpid()]),
                    ],
                )
