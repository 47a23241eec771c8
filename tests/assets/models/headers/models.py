"""Echoes a request header back as an output and as response headers; fails on demand."""

from mlpack import MLModel
from mlpack.types import InferenceRequest, InferenceResponse, Parameters, ResponseOutput


class HeadersModel(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        headers = (payload.parameters.headers or {}) if payload.parameters else {}
        value = headers.get("x-test-header", "")
        if value == "fail":
            raise ValueError("the model refused this request")
        return InferenceResponse(
            model_name=self.name,
            id=payload.id,
            parameters=Parameters(
                headers={"x-echo": value, "x-weird": "line\r\nbreak é", "bad name": "x"}
            ),
            outputs=[ResponseOutput(name="header", shape=[1], datatype="BYTES", data=[value])],
        )
