"""Helpers the built-in runtimes share (and custom runtimes may use).

Each runtime keeps what is specific to its library; finding the artefact, checking the
requested outputs, shaping a single feature matrix and turning a result array into an
output are the same for all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .codecs.tensors import tensor_as_ndarray, to_datatype
from .errors import InvalidRequest, ModelLoadError
from .model import MLModel
from .model_uri import resolve_model_uri
from .types import Datatype, InferenceRequest, ResponseOutput


def artefact_path(model: MLModel, *defaults: str) -> Path:
    """The model file: ``parameters.uri`` or else the first of ``defaults`` that exists.

    A relative path is taken from the model's folder; a folder URI (KServe's
    ``/mnt/models``) is searched for ``defaults``. Raises ``ModelLoadError`` when the
    file is missing.
    """
    path = resolve_model_uri(model.settings.parameters.uri, model.settings.folder, defaults)
    if not path.exists():
        raise ModelLoadError(f"model '{model.name}': artefact {path} not found")
    return path


def requested_outputs(
    model: MLModel, payload: InferenceRequest, available: Sequence[str], default: Sequence[str]
) -> list[str]:
    """The output names a request asks for (``default`` when none), each one ``available``."""
    names = [output.name for output in payload.outputs] if payload.outputs else list(default)
    for name in names:
        if name not in available:
            raise InvalidRequest(
                f"model '{model.name}' has no output '{name}' (available: {list(available)})"
            )
    return names


def feature_matrix(model: MLModel, payload: InferenceRequest, num_features: int) -> np.ndarray:
    """The request's one numeric input as a ``[rows, num_features]`` array (1-D: one column)."""
    if len(payload.inputs) != 1:
        raise InvalidRequest(
            f"model '{model.name}' takes one input tensor, got {len(payload.inputs)}"
        )
    request_input = payload.inputs[0]
    if request_input.datatype in (Datatype.BYTES, Datatype.BOOL):
        raise InvalidRequest(
            f"input '{request_input.name}': model '{model.name}' expects a numeric tensor, "
            f"got {request_input.datatype.value}"
        )
    array = tensor_as_ndarray(request_input)
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2 or array.shape[1] != num_features:
        raise InvalidRequest(
            f"input '{request_input.name}': model '{model.name}' expects shape "
            f"[-1, {num_features}], got {list(request_input.shape)}"
        )
    return array


def array_output(name: str, result: np.ndarray, shape: list[int] | None = None) -> ResponseOutput:
    """A result array as an output (``shape`` defaults to the array's own).

    The data is a flat list, as MLServer's runtimes give it (code written against their
    outputs keeps working); strings and bytes become ``str`` elements of a BYTES tensor.
    """
    data = result.reshape(-1).tolist()
    if result.dtype.kind in "OSU":
        data = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in data]
    return ResponseOutput(
        name=name,
        shape=list(result.shape) if shape is None else shape,
        datatype=to_datatype(result.dtype),
        data=data,
    )
