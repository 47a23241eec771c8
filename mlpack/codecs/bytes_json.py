"""BYTES output elements as JSON strings (the REST encoding of the Open Inference Protocol).

JSON has no bytes type, so a BYTES element travels as a string: UTF-8 bytes become the text
they hold. A tensor with any element that is not valid UTF-8 is sent whole as base64 text
and its ``parameters.content_type`` becomes ``"base64"``, so a client that honours content
types (``Base64Codec``) gets the exact bytes back. Only BYTES outputs are looked at: numeric
outputs keep their data untouched (no per-element work).
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from ..types import Datatype, Parameters, ResponseOutput

BASE64 = "base64"
_BINARY = (bytes, bytearray, memoryview)


def _flat(data: Any) -> list[Any]:
    if isinstance(data, np.ndarray):
        return data.reshape(-1).tolist()
    if isinstance(data, (list, tuple)):
        if any(isinstance(item, (list, tuple, np.ndarray)) for item in data):
            return [value for item in data for value in _flat(item)]
        return list(data)
    return [data]


def _needs_text(data: Any) -> bool:
    """True when ``data`` holds anything JSON cannot carry as it is (bytes, arrays)."""
    if isinstance(data, np.ndarray):
        return True
    if isinstance(data, (list, tuple)):
        return any(not isinstance(item, str) for item in data)
    return data is not None and not isinstance(data, str)


def bytes_output_as_text(output: ResponseOutput) -> None:
    """Make a BYTES output's ``data`` JSON strings, in place (see the module docstring)."""
    if output.datatype is not Datatype.BYTES or not _needs_text(output.data):
        return
    elements = _flat(output.data)
    try:
        output.data = [
            bytes(item).decode("utf-8") if isinstance(item, _BINARY) else item for item in elements
        ]
        return
    except UnicodeDecodeError:
        pass
    output.data = [
        base64.b64encode(item if isinstance(item, _BINARY) else str(item).encode()).decode("ascii")
        for item in elements
    ]
    if output.parameters is None:
        output.parameters = Parameters(content_type=BASE64)
    else:  # a copy: a model may hand out one Parameters object for many responses
        output.parameters = output.parameters.model_copy(update={"content_type": BASE64})


def bytes_outputs_as_text(outputs: list[ResponseOutput]) -> None:
    """``bytes_output_as_text`` for every BYTES output of a response."""
    for output in outputs:
        if output.datatype is Datatype.BYTES:
            bytes_output_as_text(output)
