"""Serve a joblib/pickle-saved scikit-learn estimator or pipeline."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlpack.codecs.tensors import tensor_as_ndarray, to_datatype
from mlpack.errors import InvalidRequest, ModelLoadError
from mlpack.model import MLModel
from mlpack.runtime_support import array_output, artefact_path, requested_outputs
from mlpack.types import (
    Datatype,
    InferenceRequest,
    InferenceResponse,
    MetadataTensor,
    ResponseOutput,
)

DEFAULT_URI = "model.joblib"
PREDICT, PREDICT_PROBA, TRANSFORM = "predict", "predict_proba", "transform"
SUPPORTED_OUTPUTS = (PREDICT, PREDICT_PROBA, TRANSFORM)


class SKLearnModel(MLModel):
    """Outputs ``predict``, ``predict_proba`` and ``transform``, as the request asks.

    With no outputs requested, the outputs declared in the model's settings are
    returned, or ``predict`` when none are declared. Inputs: one tensor (any name),
    or several columns with ``content_type: pd``.
    """

    async def load(self) -> bool:
        path = artefact_path(self, DEFAULT_URI)
        import joblib

        self._estimator = joblib.load(path)
        self._available = [m for m in SUPPORTED_OUTPUTS if hasattr(self._estimator, m)]
        declared = {tensor.name for tensor in self.outputs}
        unknown = declared - set(self._available)
        if unknown:
            raise ModelLoadError(
                f"model '{self.name}': declared outputs {sorted(unknown)} are not methods "
                f"of {type(self._estimator).__name__} (available: {self._available})"
            )
        self._default_outputs = [t.name for t in self.outputs] or [PREDICT]
        if not self.outputs:
            # Metadata lists every output this estimator can return.
            self.outputs = [
                MetadataTensor(name=m, datatype=self._output_datatype(m), shape=[-1, -1])
                for m in self._available
            ]
        return True

    def _output_datatype(self, method: str) -> Datatype:
        classes = getattr(self._estimator, "classes_", None)
        if method == PREDICT and classes is not None:
            return to_datatype(np.asarray(classes).dtype)
        return Datatype.FP64

    def predict(self, payload: InferenceRequest) -> InferenceResponse:  # type: ignore[override]
        features = self._features(payload)
        names = requested_outputs(self, payload, self._available, self._default_outputs)
        outputs = [self._output(name, features) for name in names]
        return InferenceResponse(model_name=self.name, model_version=self.version, outputs=outputs)

    def _features(self, payload: InferenceRequest) -> Any:
        content_type = payload.parameters.content_type if payload.parameters else None
        if content_type == "pd" or (
            content_type is None and self.settings.parameters.content_type == "pd"
        ):
            return self.decode_request(payload)
        if len(payload.inputs) != 1:
            raise InvalidRequest(
                f"model '{self.name}' takes one input tensor, got {len(payload.inputs)} "
                "(send several columns with parameters.content_type 'pd')"
            )
        array = tensor_as_ndarray(payload.inputs[0])
        if array.ndim == 1:
            array = array.reshape(-1, 1)
        return array

    def _output(self, method: str, features: Any) -> ResponseOutput:
        try:
            result = np.asarray(getattr(self._estimator, method)(features))
        except ValueError as error:
            # scikit-learn reports shape/feature mismatches as ValueError: the caller's fault.
            raise InvalidRequest(f"model '{self.name}': {error}") from None
        shape = list(result.shape) if result.ndim > 1 else [result.shape[0], 1]
        return array_output(method, result, shape)
