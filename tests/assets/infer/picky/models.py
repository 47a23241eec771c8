"""Doubles its input, but raises (HTTP 500) on any request holding a negative value."""

from mlpack import MLModel
from mlpack.codecs.tensors import tensor_as_ndarray
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput


class PickyModel(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        array = tensor_as_ndarray(payload.inputs[0]).astype(float)
        if (array < 0).any():
            raise ValueError(f"negative value {array.min()} refused")
        return InferenceResponse(
            model_name=self.name,
            id=payload.id,
            outputs=[
                ResponseOutput(
                    name="doubled",
                    shape=list(array.shape),
                    datatype="FP64",
                    data=(array * 2).reshape(-1).tolist(),
                )
            ],
        )
