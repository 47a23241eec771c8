# A JSON-in/JSON-out custom model, after MLServer's "custom JSON" example.
import json
from typing import Any, Dict

from mlserver import MLModel, types
from mlserver.codecs import StringCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput


class JsonHelloWorldModel(MLModel):
    async def load(self) -> bool:
        self.ready = True
        return self.ready

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        request = self._extract_json(payload)
        if "name" not in request:
            raise InferenceError("the request needs a 'name'")
        response = {"greeting": f"Hello {request['name']}", "model": self.name}
        response_bytes = json.dumps(response).encode("UTF-8")
        return InferenceResponse(
            id=payload.id,
            model_name=self.name,
            model_version=self.version,
            outputs=[
                ResponseOutput(
                    name="echo_response",
                    shape=[len(response_bytes)],
                    datatype="BYTES",
                    data=[response_bytes],
                    parameters=types.Parameters(content_type="str"),
                )
            ],
        )

    def _extract_json(self, payload: InferenceRequest) -> Dict[str, Any]:
        inputs = {}
        for inp in payload.inputs:
            inputs.update(json.loads("".join(self.decode(inp, default_codec=StringCodec))))
        return inputs
