"""Codec base classes and the content-type registries.

An *input codec* converts one tensor (``RequestInput`` / ``ResponseOutput``)
to and from a Python value; a *request codec* converts a whole
``InferenceRequest`` / ``InferenceResponse``. Names match MLServer's
``mlserver.codecs`` so user code migrates by changing imports.
"""

from __future__ import annotations

import types
import typing
from typing import Any, ClassVar, TypeVar, Union

from ..errors import InvalidRequest
from ..types import (
    InferenceRequest,
    InferenceResponse,
    Parameters,
    RequestInput,
    ResponseOutput,
)

DEFAULT_INPUT_PREFIX = "input-"
DEFAULT_OUTPUT_PREFIX = "output-"


class InputCodec:
    """Converts one tensor to and from a Python value."""

    ContentType: ClassVar[str] = ""
    TypeHint: ClassVar[Any] = None

    @classmethod
    def can_encode(cls, payload: Any) -> bool:
        return False

    @classmethod
    def encode_output(cls, name: str, payload: Any, **kwargs: Any) -> ResponseOutput:
        raise NotImplementedError(f"{cls.__name__} cannot encode outputs")

    @classmethod
    def decode_output(cls, response_output: ResponseOutput) -> Any:
        raise NotImplementedError(f"{cls.__name__} cannot decode outputs")

    @classmethod
    def encode_input(cls, name: str, payload: Any, **kwargs: Any) -> RequestInput:
        raise NotImplementedError(f"{cls.__name__} cannot encode inputs")

    @classmethod
    def decode_input(cls, request_input: RequestInput) -> Any:
        raise NotImplementedError(f"{cls.__name__} cannot decode inputs")


class RequestCodec:
    """Converts a whole request or response to and from a Python value."""

    ContentType: ClassVar[str] = ""
    TypeHint: ClassVar[Any] = None

    @classmethod
    def can_encode(cls, payload: Any) -> bool:
        return False

    @classmethod
    def encode_response(
        cls, model_name: str, payload: Any, model_version: str | None = None, **kwargs: Any
    ) -> InferenceResponse:
        raise NotImplementedError(f"{cls.__name__} cannot encode responses")

    @classmethod
    def decode_response(cls, response: InferenceResponse) -> Any:
        raise NotImplementedError(f"{cls.__name__} cannot decode responses")

    @classmethod
    def encode_request(cls, payload: Any, **kwargs: Any) -> InferenceRequest:
        raise NotImplementedError(f"{cls.__name__} cannot encode requests")

    @classmethod
    def decode_request(cls, request: InferenceRequest, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{cls.__name__} cannot decode requests")


InputCodecLike = type[InputCodec] | InputCodec
RequestCodecLike = type[RequestCodec] | RequestCodec

_InputT = TypeVar("_InputT", bound=InputCodecLike)
_RequestT = TypeVar("_RequestT", bound=RequestCodecLike)


class _CodecRegistry:
    """Codecs by content type, in registration order (for payload lookups)."""

    def __init__(self) -> None:
        self._by_content_type: dict[str, Any] = {}

    def register(self, codec: Any) -> None:
        self._by_content_type[codec.ContentType] = codec

    def content_types(self) -> list[str]:
        return list(self._by_content_type)

    def find(self, content_type: str | None, payload: Any, type_hint: Any) -> Any:
        if content_type is not None:
            return self._by_content_type.get(content_type)
        if type_hint is not None:
            wanted = normalise_type_hint(type_hint)
            for codec in self._by_content_type.values():
                if _hint_matches(codec.TypeHint, type_hint, wanted):
                    return codec
            return None
        if payload is not None:
            for codec in self._by_content_type.values():
                if codec.can_encode(payload):
                    return codec
        return None


_input_codecs = _CodecRegistry()
_request_codecs = _CodecRegistry()


def register_input_codec(codec: _InputT) -> _InputT:
    """Class decorator: make an input codec findable by its ``ContentType``."""
    _input_codecs.register(codec)
    return codec


def register_request_codec(codec: _RequestT) -> _RequestT:
    """Class decorator: make a request codec findable by its ``ContentType``."""
    _request_codecs.register(codec)
    return codec


def find_input_codec(
    content_type: str | None = None, payload: Any = None, type_hint: Any = None
) -> InputCodecLike | None:
    """The input codec for a content type, else a type hint, else a payload; or None."""
    _ensure_builtin_codecs()
    return _input_codecs.find(content_type, payload, type_hint)  # type: ignore[no-any-return]


def find_request_codec(
    content_type: str | None = None, payload: Any = None, type_hint: Any = None
) -> RequestCodecLike | None:
    """The request codec for a content type, else a type hint, else a payload; or None."""
    _ensure_builtin_codecs()
    return _request_codecs.find(content_type, payload, type_hint)  # type: ignore[no-any-return]


def input_content_types() -> list[str]:
    """Registered input codec content types."""
    _ensure_builtin_codecs()
    return _input_codecs.content_types()


def request_content_types() -> list[str]:
    """Registered request codec content types."""
    _ensure_builtin_codecs()
    return _request_codecs.content_types()


def normalise_type_hint(hint: Any) -> Any:
    """A comparable form of a hint: ``List[str]`` and ``list[str]`` compare equal."""
    if isinstance(hint, str):
        return hint
    origin = typing.get_origin(hint)
    if origin is None:
        return hint
    if origin in (Union, types.UnionType):
        return (Union, frozenset(normalise_type_hint(arg) for arg in typing.get_args(hint)))
    return (origin, tuple(normalise_type_hint(arg) for arg in typing.get_args(hint)))


def _hint_matches(codec_hint: Any, hint: Any, wanted: Any) -> bool:
    if codec_hint is None:
        return False
    if isinstance(codec_hint, str):
        # A dotted name such as "pandas.DataFrame" matches without importing its module.
        if not isinstance(hint, type):
            return False
        package, _, name = codec_hint.rpartition(".")
        return hint.__name__ == name and hint.__module__.split(".")[0] == package.split(".")[0]
    return bool(normalise_type_hint(codec_hint) == wanted)


def unwrap_optional(hint: Any) -> tuple[Any, bool]:
    """``Optional[X]`` → ``(X, True)``; anything else → ``(hint, False)``."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(args) < len(typing.get_args(hint)):
            if len(args) == 1:
                return args[0], True
            return Union[tuple(args)], True  # noqa: UP007 (built from a runtime tuple)
    return hint, False


def content_type_error(what: str, content_type: str, known: list[str]) -> InvalidRequest:
    return InvalidRequest(
        f"{what}: unknown content type '{content_type}' (known: {', '.join(sorted(known))})"
    )


_builtins_loaded = False


def _ensure_builtin_codecs() -> None:
    # The built-in codecs register themselves on import; import them on first lookup
    # so ``find_*`` works even when only ``mlpack.codecs.base`` was imported.
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    from . import base64, datetime, numpy, pandas, string  # noqa: F401


_InputCodec = InputCodec  # the attribute below shadows the class name in the class body


class SingleInputRequestCodec(RequestCodec):
    """A request codec for requests and responses with exactly one tensor."""

    InputCodec: ClassVar[type[_InputCodec] | None] = None

    @classmethod
    def _codec(cls) -> type[_InputCodec]:
        if cls.InputCodec is None:
            raise NotImplementedError(f"{cls.__name__} has no InputCodec")
        return cls.InputCodec

    @classmethod
    def can_encode(cls, payload: Any) -> bool:
        return cls._codec().can_encode(payload)

    @classmethod
    def encode_response(
        cls, model_name: str, payload: Any, model_version: str | None = None, **kwargs: Any
    ) -> InferenceResponse:
        output = cls._codec().encode_output(f"{DEFAULT_OUTPUT_PREFIX}1", payload, **kwargs)
        return InferenceResponse(
            model_name=model_name, model_version=model_version, outputs=[output]
        )

    @classmethod
    def decode_response(cls, response: InferenceResponse) -> Any:
        if len(response.outputs) != 1:
            raise InvalidRequest(
                f"content type '{cls.ContentType}' needs exactly one output, "
                f"got {len(response.outputs)}"
            )
        return cls._codec().decode_output(response.outputs[0])

    @classmethod
    def encode_request(cls, payload: Any, **kwargs: Any) -> InferenceRequest:
        request_input = cls._codec().encode_input(f"{DEFAULT_INPUT_PREFIX}1", payload, **kwargs)
        return InferenceRequest(
            inputs=[request_input], parameters=Parameters(content_type=cls.ContentType)
        )

    @classmethod
    def decode_request(cls, request: InferenceRequest, **kwargs: Any) -> Any:
        if len(request.inputs) != 1:
            names = ", ".join(f"'{i.name}'" for i in request.inputs)
            raise InvalidRequest(
                f"content type '{cls.ContentType}' needs exactly one input, "
                f"got {len(request.inputs)} ({names})"
            )
        return cls._codec().decode_input(request.inputs[0])
