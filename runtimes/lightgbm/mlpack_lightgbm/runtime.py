"""Serve a LightGBM booster saved with ``Booster.save_model`` (``model.txt``)."""

from __future__ import annotations

import numpy as np

from mlpack.errors import ModelLoadError
from mlpack.model import MLModel
from mlpack.runtime_support import array_output, artefact_path, feature_matrix, requested_outputs
from mlpack.types import (
    Datatype,
    InferenceRequest,
    InferenceResponse,
    MetadataTensor,
    ResponseOutput,
)

DEFAULT_URI = "model.txt"
PREDICT, PREDICT_PROBA = "predict", "predict_proba"
_CLASSIFIERS = ("binary", "multiclass", "multiclassova")


class LightGBMModel(MLModel):
    """Outputs ``predict`` (classes for classifiers, values otherwise) and ``predict_proba``.

    Input: one numeric tensor of shape ``[rows, features]``, checked against the booster's
    feature count. ``parameters.extra.num_threads`` sets LightGBM's prediction threads.
    """

    async def load(self) -> bool:
        path = artefact_path(self, DEFAULT_URI)
        import lightgbm as lgb

        self._booster = lgb.Booster(model_file=str(path))
        num_threads = self.settings.parameters.extra.get("num_threads")
        self._num_threads = None if num_threads is None else int(num_threads)
        objective = str(self._booster.params.get("objective", "")).split(" ")[0]
        self._objective = objective
        self._classifier = objective in _CLASSIFIERS
        self._num_features: int = self._booster.num_feature()
        self._available = [PREDICT, PREDICT_PROBA] if self._classifier else [PREDICT]
        declared = {tensor.name for tensor in self.outputs}
        unknown = declared - set(self._available)
        if unknown:
            raise ModelLoadError(
                f"model '{self.name}': declared outputs {sorted(unknown)} are not available for "
                f"objective '{objective}' (available: {self._available})"
            )
        self._default_outputs = [t.name for t in self.outputs] or [PREDICT]
        if not self.outputs:
            # Metadata lists every output this booster can return.
            predict_type = Datatype.INT64 if self._classifier else Datatype.FP64
            outputs = [MetadataTensor(name=PREDICT, datatype=predict_type, shape=[-1, 1])]
            if self._classifier:
                outputs.append(
                    MetadataTensor(name=PREDICT_PROBA, datatype=Datatype.FP64, shape=[-1, -1])
                )
            self.outputs = outputs
        return True

    def predict(self, payload: InferenceRequest) -> InferenceResponse:  # type: ignore[override]
        features = feature_matrix(self, payload, self._num_features)
        names = requested_outputs(self, payload, self._available, self._default_outputs)
        if self._num_threads is None:
            raw = np.asarray(self._booster.predict(features))
        else:
            raw = np.asarray(self._booster.predict(features, num_threads=self._num_threads))
        outputs = [self._output(name, raw) for name in names]
        return InferenceResponse(model_name=self.name, model_version=self.version, outputs=outputs)

    def _output(self, method: str, raw: np.ndarray) -> ResponseOutput:
        binary = self._objective == "binary"
        result: np.ndarray
        if method == PREDICT_PROBA:
            result = np.column_stack([1 - raw, raw]) if binary else raw
        elif binary:
            result = (raw > 0.5).astype(np.int64)
        elif self._classifier:
            result = np.argmax(raw, axis=1).astype(np.int64)
        else:
            result = raw
        shape = list(result.shape) if result.ndim > 1 else [result.shape[0], 1]
        return array_output(method, result, shape)
