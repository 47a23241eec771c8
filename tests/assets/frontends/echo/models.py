"""Returns every input as an output of the same name, shape, datatype and values."""

from mlpack import MLModel
from mlpack.codecs.tensors import ndarray_to_data, tensor_as_ndarray
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput


class EchoModel(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        outputs = []
        for request_input in payload.inputs:
            array = tensor_as_ndarray(request_input)
            outputs.append(
                ResponseOutput(
                    name=request_input.name,
                    shape=list(array.shape),
                    datatype=request_input.datatype,
                    data=ndarray_to_data(array),
                )
            )
        return InferenceResponse(model_name=self.name, id=payload.id, outputs=outputs)
