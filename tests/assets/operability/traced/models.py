"""Echoes its first input, opening a child span of its own through ``mlpack.tracer()``."""

import mlpack
from mlpack.codecs.tensors import ndarray_to_data, tensor_as_ndarray
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput


class TracedModel(mlpack.MLModel):
    def predict(self, payload: InferenceRequest) -> InferenceResponse:
        with mlpack.tracer().start_as_current_span("model work") as span:
            first = payload.inputs[0]
            array = tensor_as_ndarray(first)
            span.set_attribute("rows", int(array.shape[0]))
            output = ResponseOutput(
                name="y",
                shape=list(array.shape),
                datatype=first.datatype,
                data=ndarray_to_data(array),
            )
        return InferenceResponse(model_name=self.name, outputs=[output])
