from helper import VALUE

from mlpack import MLModel
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput


class Model(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        return InferenceResponse(
            model_name=self.name,
            outputs=[ResponseOutput(name="which", shape=[1], datatype="BYTES", data=[VALUE])],
        )
