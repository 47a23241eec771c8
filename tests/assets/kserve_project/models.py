# A custom runtime written for MLServer (unchanged): a linear model whose weights live in
# the model URI (a file, or a folder holding weights.json, e.g. KServe's /mnt/models).
import json

import numpy as np

from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class LinearModel(MLModel):
    async def load(self) -> bool:
        model_uri = await get_model_uri(self._settings, wellknown_filenames=["weights.json"])
        with open(model_uri) as handle:
            self._weights = np.asarray(json.load(handle)["weights"], dtype=np.float64)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        features = NumpyCodec.decode_input(payload.inputs[0])
        scores = features.reshape(-1, self._weights.shape[0]) @ self._weights
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[NumpyCodec.encode_output(name="score", payload=scores)],
        )
