"""Serve an MLflow model folder (``MLmodel`` + artefacts) through ``mlflow.pyfunc``."""

from __future__ import annotations

import logging
import re
import sys
import warnings
from typing import Any

import numpy as np

from mlpack.codecs.tensors import tensor_as_ndarray
from mlpack.errors import InvalidRequest, ModelLoadError
from mlpack.model import MLModel
from mlpack.runtime_support import array_output, artefact_path
from mlpack.types import (
    InferenceRequest,
    InferenceResponse,
    Parameters,
    RequestInput,
    ResponseOutput,
)

from .scoring import Invocations
from .signature import (
    INPUT_PREFIX,
    OUTPUT_PREFIX,
    is_tensor_schema,
    metadata_tensors,
    required_names,
)

logger = logging.getLogger("mlpack.runtimes.mlflow")

MLMODEL = "MLmodel"
# MLServer's content type for "a dict of tensors, one per input".
DICT_CONTENT_TYPE = "dict"


class _AsArray:
    """Default decoding of an input with no content type: its tensor as sent."""

    @staticmethod
    def decode_input(request_input: RequestInput) -> np.ndarray:
        return tensor_as_ndarray(request_input)


def _pyfunc() -> Any:
    try:
        with warnings.catch_warnings():
            # mlflow warns about its own type hints while it imports.
            warnings.simplefilter("ignore")
            import mlflow.pyfunc
    except ImportError:
        raise ModelLoadError(
            "the MLflow runtime needs mlflow: install it with `pip install mlpack[mlflow]`"
        ) from None
    return mlflow.pyfunc


def _plain_text(message: Warning | str) -> str:
    """A warning's text without MLflow's terminal colour codes."""
    return re.sub(r"\x1b\[[0-9;]*m", "", str(message))


class MLflowModel(MLModel):
    """An MLflow model loaded with ``mlflow.pyfunc.load_model``.

    ``parameters.uri`` is the MLflow model folder (the one holding ``MLmodel``); it
    defaults to the model's own folder. Inputs and outputs come from the model's
    signature: a column signature is served with the ``pd`` content type (one tensor
    per column), a tensor signature with ``np`` (one tensor: an array; several: a dict
    of arrays). Signature parameters are read from the request's ``parameters``.

    MLflow's ``/invocations`` scoring route (``scoring.Invocations``) is offered for the
    model named in the server's ``model_routes`` setting.
    """

    rest_routes = (Invocations(),)

    async def load(self) -> bool:
        folder = artefact_path(self, ".")
        if not (folder / MLMODEL).is_file():
            raise ModelLoadError(
                f"model '{self.name}': {folder} is not an MLflow model folder "
                f"(no {MLMODEL} file); point parameters.uri at the folder MLflow saved"
            )
        pyfunc = _pyfunc()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                self._model = pyfunc.load_model(str(folder))
        except Exception as error:
            raise ModelLoadError(
                f"model '{self.name}': MLflow cannot load {folder}: {error}"
            ) from error
        for warning in caught:
            # MLflow's advice to model authors (type hints, version mismatches) goes to the log.
            logger.warning("model '%s': MLflow: %s", self.name, _plain_text(warning.message))
        self._folder = folder
        self._read_signature(self._model.metadata.signature)
        return True

    def _read_signature(self, signature: Any) -> None:
        self._required: list[str] = []
        self._params: list[str] = []
        self._output_names: list[str] = [t.name for t in self.outputs]
        if signature is None:
            return
        inputs = signature.inputs
        if inputs is not None:
            if not self.inputs:
                self.inputs = metadata_tensors(inputs, INPUT_PREFIX)
            if all(spec.name for spec in inputs.inputs):
                self._required = required_names(inputs, INPUT_PREFIX)
            if not self.settings.parameters.content_type:
                self.settings.parameters.content_type = self._default_content_type(inputs)
        if signature.outputs is not None and not self.outputs:
            self.outputs = metadata_tensors(signature.outputs, OUTPUT_PREFIX)
            self._output_names = [t.name for t in self.outputs]
        if signature.params is not None:
            self._params = [spec.name for spec in signature.params.params]

    @staticmethod
    def _default_content_type(inputs: Any) -> str:
        if not is_tensor_schema(inputs):
            return "pd"
        return "np" if len(inputs.inputs) == 1 else DICT_CONTENT_TYPE

    async def unload(self) -> bool:
        self._model = None
        return True

    # -- predict -----------------------------------------------------------------
    def predict(self, payload: InferenceRequest) -> InferenceResponse:  # type: ignore[override]
        data = self.model_input(payload)
        params = self._request_params(payload)
        from mlflow.exceptions import MlflowException

        try:
            if params:
                result = self._model.predict(data, params=params)
            else:
                result = self._model.predict(data)
        except MlflowException as error:
            # MLflow checks the input against the signature and says what does not fit.
            status: int = error.get_http_status_code()  # type: ignore[no-untyped-call,unused-ignore]
            if 400 <= status < 500:
                raise InvalidRequest(f"model '{self.name}': {error.message}") from None
            raise
        pandas = sys.modules.get("pandas")
        as_frame = pandas is not None and isinstance(result, pandas.DataFrame)
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=self.model_outputs(result),
            # A DataFrame answer says so: /invocations answers it as records, as MLflow does.
            parameters=Parameters(content_type="pd") if as_frame else None,
        )

    def model_input(self, payload: InferenceRequest) -> Any:
        """The request as the pyfunc flavour takes it: DataFrame, array or dict of arrays."""
        if not payload.inputs:
            raise InvalidRequest(f"model '{self.name}': the request has no inputs")
        self._check_required(payload)
        own = payload.parameters.content_type if payload.parameters else None
        content_type = own or self.settings.parameters.content_type
        if content_type == DICT_CONTENT_TYPE or (
            content_type in (None, "np") and len(payload.inputs) > 1
        ):
            return {tensor.name: self.decode(tensor, _AsArray) for tensor in payload.inputs}
        if content_type in (None, "np"):
            return self.decode(payload.inputs[0], _AsArray)
        return self.decode_request(payload)

    def _check_required(self, payload: InferenceRequest) -> None:
        if not self._required:
            return
        sent = {tensor.name for tensor in payload.inputs}
        missing = [name for name in self._required if name not in sent]
        if missing:
            raise InvalidRequest(
                f"model '{self.name}': missing input(s) {', '.join(repr(n) for n in missing)} "
                f"(its MLflow signature needs {self._required})"
            )

    def _request_params(self, payload: InferenceRequest) -> dict[str, Any] | None:
        if not self._params or payload.parameters is None:
            return None
        given = {name: getattr(payload.parameters, name, None) for name in self._params}
        return {name: value for name, value in given.items() if value is not None} or None

    def model_outputs(self, result: Any) -> list[ResponseOutput]:
        """The pyfunc's answer as outputs: one per column, dict key, or a single tensor."""
        pandas = sys.modules.get("pandas")
        if pandas is not None and isinstance(result, pandas.DataFrame):
            return self.encode_response(result).outputs
        if pandas is not None and isinstance(result, pandas.Series):
            result = result.to_numpy()
        if isinstance(result, dict):
            return [_output(str(key), value) for key, value in result.items()]
        name = self._output_names[0] if len(self._output_names) == 1 else f"{OUTPUT_PREFIX}0"
        return [_output(name, result)]


def _output(name: str, value: Any) -> ResponseOutput:
    array = np.asarray(value)
    if array.ndim == 0:
        array = array.reshape(1)
    return array_output(name, array)
