"""Loads only while the file named by ``MLPACK_TEST_FRAGILE_FLAG`` does not exist, so a
test can make every replacement worker fail to start (a crash loop) and then heal it."""

import os

from mlpack import MLModel
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput


class FragileModel(MLModel):
    def load(self) -> bool:
        flag = os.environ.get("MLPACK_TEST_FRAGILE_FLAG")
        if flag and os.path.exists(flag):
            raise RuntimeError("the test says this worker must not start")
        return True

    def predict(self, payload: InferenceRequest) -> InferenceResponse:
        return InferenceResponse(
            model_name=self.name,
            outputs=[ResponseOutput(name="pid", shape=[1], datatype="INT64", data=[os.getpid()])],
        )
