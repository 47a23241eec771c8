"""Echoes its inputs, but answers 500 for a request whose first value is listed in
``refuse.json`` next to this file (read on every call), so a test decides which lines fail."""

import json
from pathlib import Path

from mlpack import MLModel
from mlpack.codecs.tensors import ndarray_to_data, tensor_as_ndarray
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput


class GateModel(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        arrays = [tensor_as_ndarray(i) for i in payload.inputs]
        refuse_file = Path(self.settings.folder or ".") / "refuse.json"
        refused = set(json.loads(refuse_file.read_text())) if refuse_file.exists() else set()
        first = float(arrays[0].reshape(-1)[0]) if arrays[0].size else None
        if first in refused:
            raise ValueError(f"value {first} refused by refuse.json")
        return InferenceResponse(
            model_name=self.name,
            id=payload.id,
            outputs=[
                ResponseOutput(
                    name=i.name, shape=list(a.shape), datatype=i.datatype, data=ndarray_to_data(a)
                )
                for i, a in zip(payload.inputs, arrays, strict=True)
            ],
        )
