"""Answers BYTES outputs holding Python ``bytes``, as models commonly do.

``echo``: each input's elements decoded as bytes; ``greeting``: ``StringCodec`` with
``use_bytes=True``; ``raw``: bytes that are not UTF-8 (each element prefixed with 0xFF).
"""

from mlpack import MLModel
from mlpack.codecs import StringCodec
from mlpack.codecs.tensors import tensor_as_ndarray
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput


class BytesModel(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        elements = tensor_as_ndarray(payload.inputs[0]).reshape(-1).tolist()  # list[bytes]
        shape = [len(elements)]
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                ResponseOutput(name="echo", shape=shape, datatype="BYTES", data=elements),
                StringCodec.encode_output("greeting", ["héllo"], use_bytes=True),
                ResponseOutput(
                    name="raw", shape=shape, datatype="BYTES", data=[b"\xff" + e for e in elements]
                ),
            ],
        )
