"""Serve a LightGBM booster saved with ``Booster.save_model`` (``model.txt``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlpack.codecs.tensors import tensor_as_ndarray, to_datatype
from mlpack.errors import InvalidRequest, ModelLoadError
from mlpack.model import MLModel
from mlpack.types import (
    Datatype,
    InferenceRequest,
    InferenceResponse,
    MetadataTensor,
    RequestOutput,
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
        uri = self.settings.parameters.uri or DEFAULT_URI
        path = Path(uri)
        if not path.is_absolute() and self.settings.folder:
            path = Path(self.settings.folder) / path
        if not path.exists():
            raise ModelLoadError(f"model '{self.name}': artefact {path} not found")
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
                outputs.append(MetadataTensor(name=PREDICT_PROBA, datatype=Datatype.FP64, shape=[-1, -1]))
            self.outputs = outputs
        return True

    def predict(self, payload: InferenceRequest) -> InferenceResponse:  # type: ignore[override]
        features = self._features(payload)
        requested = payload.outputs or [RequestOutput(name=n) for n in self._default_outputs]
        for request_output in requested:
            if request_output.name not in self._available:
                raise InvalidRequest(
                    f"model '{self.name}' has no output '{request_output.name}' "
                    f"(available: {self._available})"
                )
        if self._num_threads is None:
            raw = np.asarray(self._booster.predict(features))
        else:
            raw = np.asarray(self._booster.predict(features, num_threads=self._num_threads))
        outputs = [self._output(r.name, raw) for r in requested]
        return InferenceResponse(model_name=self.name, model_version=self.version, outputs=outputs)

    def _features(self, payload: InferenceRequest) -> np.ndarray:
        if len(payload.inputs) != 1:
            raise InvalidRequest(
                f"model '{self.name}' takes one input tensor, got {len(payload.inputs)}"
            )
        request_input = payload.inputs[0]
        if request_input.datatype in (Datatype.BYTES, Datatype.BOOL):
            raise InvalidRequest(
                f"input '{request_input.name}': model '{self.name}' expects a numeric tensor, "
                f"got {request_input.datatype.value}"
            )
        array = tensor_as_ndarray(request_input)
        if array.ndim == 1:
            array = array.reshape(-1, 1)
        if array.ndim != 2 or array.shape[1] != self._num_features:
            raise InvalidRequest(
                f"input '{request_input.name}': model '{self.name}' expects shape "
                f"[-1, {self._num_features}], got {list(request_input.shape)}"
            )
        return array

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
        return ResponseOutput(
            name=method, shape=shape, datatype=to_datatype(result.dtype),
            data=result.reshape(-1).tolist(),
        )
