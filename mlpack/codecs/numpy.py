"""The ``np`` content type: tensors as numpy arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..types import Parameters, RequestInput, ResponseOutput
from .base import InputCodec, SingleInputRequestCodec, register_input_codec, register_request_codec
from .tensors import ndarray_to_data, tensor_as_ndarray, to_datatype


def _shape(array: np.ndarray) -> list[int]:
    # A 1-D array is a column of N rows, as in MLServer.
    return [array.shape[0], 1] if array.ndim == 1 else list(array.shape)


def _as_array(tensor: RequestInput | ResponseOutput) -> np.ndarray:
    array = tensor_as_ndarray(tensor)
    return array.reshape(-1, 1) if array.ndim == 1 else array


@register_input_codec
class NumpyCodec(InputCodec):
    """Tensors ⇄ numpy arrays shaped as declared (``[N]`` decodes as ``[N, 1]``)."""

    ContentType = "np"
    TypeHint = np.ndarray

    @classmethod
    def can_encode(cls, payload: Any) -> bool:
        return isinstance(payload, np.ndarray)

    @classmethod
    def encode_output(cls, name: str, payload: np.ndarray, **kwargs: Any) -> ResponseOutput:
        return ResponseOutput(
            name=name,
            datatype=to_datatype(payload.dtype),
            shape=_shape(payload),
            data=ndarray_to_data(payload),
        )

    @classmethod
    def decode_output(cls, response_output: ResponseOutput) -> np.ndarray:
        return _as_array(response_output)

    @classmethod
    def encode_input(cls, name: str, payload: np.ndarray, **kwargs: Any) -> RequestInput:
        return RequestInput(
            name=name,
            datatype=to_datatype(payload.dtype),
            shape=_shape(payload),
            data=ndarray_to_data(payload),
            parameters=Parameters(content_type=cls.ContentType),
        )

    @classmethod
    def decode_input(cls, request_input: RequestInput) -> np.ndarray:
        return _as_array(request_input)


@register_request_codec
class NumpyRequestCodec(SingleInputRequestCodec):
    """A request with a single input ⇄ one numpy array."""

    InputCodec = NumpyCodec
    ContentType = NumpyCodec.ContentType
    TypeHint = np.ndarray
