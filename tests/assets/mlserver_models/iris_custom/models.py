# A custom inference runtime, as in MLServer's "Custom Inference Runtimes" guide.
import joblib

from mlserver import MLModel
from mlserver.codecs import NumpyCodec, NumpyRequestCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class IrisRuntime(MLModel):
    async def load(self) -> bool:
        model_uri = await get_model_uri(self._settings, wellknown_filenames=["model.joblib"])
        self._model = joblib.load(model_uri)
        self.ready = True
        return self.ready

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        features = self.decode_request(payload, default_codec=NumpyRequestCodec)
        prediction = self._model.predict(features)
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[NumpyCodec.encode_output(name="predict", payload=prediction)],
        )
