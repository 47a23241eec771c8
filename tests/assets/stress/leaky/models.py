"""Leaks 5 MB per request and reports its process id and resident memory (kB)."""

import os

from mlpack import MLModel
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput

_LEAK = []


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class LeakyModel(MLModel):
    def predict(self, payload: InferenceRequest) -> InferenceResponse:
        _LEAK.append(b"x" * (5 * 1024 * 1024))
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                ResponseOutput(
                    name="process", shape=[2], datatype="INT64", data=[os.getpid(), _rss_kb()]
                )
            ],
        )
