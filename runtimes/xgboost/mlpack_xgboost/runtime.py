"""Serve an XGBoost booster saved as ``model.json``, ``model.ubj`` or ``model.bst``."""

from __future__ import annotations

import json
import warnings

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

DEFAULT_URIS = ("model.json", "model.ubj", "model.bst")
PREDICT, PREDICT_PROBA = "predict", "predict_proba"
# Objectives whose raw output is a probability we can turn into classes.
_BINARY = {"binary:logistic"}
_MULTI_PROBA = {"multi:softprob"}
_MULTI_LABEL = {"multi:softmax"}


class XGBoostModel(MLModel):
    """Outputs ``predict`` (classes for classifiers, values for regressors) and ``predict_proba``.

    Input: one numeric tensor of shape ``[rows, features]``. The number of features is
    checked against the booster before prediction. ``parameters.extra.nthread`` sets
    XGBoost's prediction threads.
    """

    async def load(self) -> bool:
        path = artefact_path(self, *DEFAULT_URIS)
        import xgboost as xgb

        self._xgb = xgb
        self._booster = xgb.Booster()
        with warnings.catch_warnings():
            # A ``.bst`` file is read as UBJSON; xgboost warns about the guess.
            warnings.filterwarnings("ignore", message=".*Unknown file format", category=UserWarning)
            self._booster.load_model(str(path))
        nthread = self.settings.parameters.extra.get("nthread")
        if nthread is not None:
            self._booster.set_param({"nthread": int(nthread)})
        config = json.loads(self._booster.save_config())
        self._objective: str = config["learner"]["objective"]["name"]
        self._num_features: int = self._booster.num_features()
        self._classifier = self._objective in _BINARY | _MULTI_PROBA | _MULTI_LABEL
        self._available = [PREDICT]
        if self._objective in _BINARY | _MULTI_PROBA:
            self._available.append(PREDICT_PROBA)
        declared = {tensor.name for tensor in self.outputs}
        unknown = declared - set(self._available)
        if unknown:
            raise ModelLoadError(
                f"model '{self.name}': declared outputs {sorted(unknown)} are not available for "
                f"objective '{self._objective}' (available: {self._available})"
            )
        self._default_outputs = [t.name for t in self.outputs] or [PREDICT]
        if not self.outputs:
            # Metadata lists every output this booster can return.
            predict_type = Datatype.INT64 if self._classifier else Datatype.FP32
            outputs = [MetadataTensor(name=PREDICT, datatype=predict_type, shape=[-1, 1])]
            if PREDICT_PROBA in self._available:
                outputs.append(
                    MetadataTensor(name=PREDICT_PROBA, datatype=Datatype.FP32, shape=[-1, -1])
                )
            self.outputs = outputs
        return True

    def predict(self, payload: InferenceRequest) -> InferenceResponse:  # type: ignore[override]
        features = feature_matrix(self, payload, self._num_features)
        names = requested_outputs(self, payload, self._available, self._default_outputs)
        raw = np.asarray(self._booster.predict(self._xgb.DMatrix(features)))
        outputs = [self._output(name, raw) for name in names]
        return InferenceResponse(model_name=self.name, model_version=self.version, outputs=outputs)

    def _output(self, method: str, raw: np.ndarray) -> ResponseOutput:
        result: np.ndarray
        if method == PREDICT_PROBA:
            result = np.column_stack([1 - raw, raw]) if self._objective in _BINARY else raw
        elif self._objective in _BINARY:
            result = (raw > 0.5).astype(np.int64)
        elif self._objective in _MULTI_PROBA:
            result = np.argmax(raw, axis=1).astype(np.int64)
        elif self._objective in _MULTI_LABEL:
            result = raw.astype(np.int64)
        else:
            result = raw
        shape = list(result.shape) if result.ndim > 1 else [result.shape[0], 1]
        return array_output(method, result, shape)
