from mlpack import MLModel
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput


class VersionModel(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                ResponseOutput(name="version", shape=[1], datatype="BYTES", data=[self.version])
            ],
        )
