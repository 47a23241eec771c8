"""Codecs: content types ``np``, ``str``, ``base64``, ``datetime`` and ``pd``.

Names match MLServer's ``mlserver.codecs``. ``PandasCodec`` is loaded on first
access so importing this package never imports pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import (
    InputCodec,
    InputCodecLike,
    RequestCodec,
    RequestCodecLike,
    SingleInputRequestCodec,
    find_input_codec,
    find_request_codec,
    register_input_codec,
    register_request_codec,
)
from .base64 import Base64Codec
from .datetime import DatetimeCodec
from .decode_args import decode_args
from .decoding import (
    decode_inference_request,
    decode_request_input,
    decode_response_output,
    encode_inference_response,
    encode_request,
    encode_response_output,
)
from .numpy import NumpyCodec, NumpyRequestCodec
from .string import StringCodec, StringRequestCodec

if TYPE_CHECKING:
    from .pandas import PandasCodec

__all__ = [
    "Base64Codec",
    "DatetimeCodec",
    "InputCodec",
    "InputCodecLike",
    "NumpyCodec",
    "NumpyRequestCodec",
    "PandasCodec",
    "RequestCodec",
    "RequestCodecLike",
    "SingleInputRequestCodec",
    "StringCodec",
    "StringRequestCodec",
    "decode_args",
    "decode_inference_request",
    "decode_request_input",
    "decode_response_output",
    "encode_inference_response",
    "encode_request",
    "encode_response_output",
    "find_input_codec",
    "find_request_codec",
    "register_input_codec",
    "register_request_codec",
]


def __getattr__(name: str) -> Any:
    if name == "PandasCodec":
        from .pandas import PandasCodec

        return PandasCodec
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
