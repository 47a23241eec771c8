# Extending MLServer's scikit-learn runtime, as its docs suggest for custom outputs.
from mlserver.settings import ModelSettings
from mlserver.types import InferenceRequest, InferenceResponse, RequestOutput
from mlserver_sklearn import SKLearnModel


class ProbaOnly(SKLearnModel):
    def __init__(self, settings: ModelSettings):
        super().__init__(settings)

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        payload.outputs = [RequestOutput(name="predict_proba")]
        return await super().predict(payload)
