"""``MLModel``: the base class every model (and runtime) derives from."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

from .model_routes import ModelRoute
from .settings import ModelSettings
from .types import (
    InferenceRequest,
    InferenceResponse,
    MetadataModelResponse,
    MetadataTensor,
    Parameters,
    RequestInput,
    RequestOutput,
    ResponseOutput,
)


class MLModel:
    """A servable model.

    Subclasses override ``load`` (read artefacts; return ``True`` when ready),
    ``predict`` (``InferenceRequest`` → ``InferenceResponse``) and optionally
    ``unload``. ``predict`` may be ``async def`` or a plain ``def``: either way it runs
    off the server's event loop, so a slow model never blocks health checks or
    other models. A model that streams overrides ``predict_stream`` (an async
    generator, or a plain generator that runs on the model's thread).

    Parameters:
        settings: the model's resolved settings (name, version, parameters, metadata).
    """

    rest_routes: ClassVar[tuple[ModelRoute, ...]] = ()
    """Extra REST routes this runtime offers (``mlpack.model_routes``); the server serves
    them only for the models named in its ``model_routes`` setting."""

    def __init__(self, settings: ModelSettings) -> None:
        self._settings = settings
        self._inputs_index = {tensor.name: tensor for tensor in settings.inputs}
        self.ready = False

    # -- identity and metadata -------------------------------------------------
    @property
    def name(self) -> str:
        return self._settings.name

    @property
    def version(self) -> str | None:
        return self._settings.parameters.version

    @property
    def settings(self) -> ModelSettings:
        return self._settings

    @property
    def inputs(self) -> list[MetadataTensor]:
        return self._settings.inputs

    @inputs.setter
    def inputs(self, value: list[MetadataTensor]) -> None:
        self._settings.inputs = value
        self._inputs_index = {tensor.name: tensor for tensor in value}

    @property
    def outputs(self) -> list[MetadataTensor]:
        return self._settings.outputs

    @outputs.setter
    def outputs(self, value: list[MetadataTensor]) -> None:
        self._settings.outputs = value

    async def metadata(self) -> MetadataModelResponse:
        parameters = None
        if self._settings.parameters.content_type:
            parameters = Parameters(content_type=self._settings.parameters.content_type)
        return MetadataModelResponse(
            name=self.name,
            platform=self._settings.platform,
            versions=list(self._settings.versions),
            inputs=self.inputs,
            outputs=self.outputs,
            parameters=parameters,
        )

    # -- lifecycle ---------------------------------------------------------------
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        raise NotImplementedError(f"model '{self.name}' does not implement predict()")

    async def predict_stream(
        self, payloads: AsyncIterator[InferenceRequest]
    ) -> AsyncIterator[InferenceResponse]:
        """Answer a stream of requests with a stream of responses (MLServer's signature).

        Override it as an async generator (``async for payload in payloads: ... yield``)
        or as a plain generator taking an ordinary iterator of requests (it then runs on
        the model's thread). This base version streams nothing: a stream request to a
        model that does not override it is answered 400 / gRPC UNIMPLEMENTED.
        """
        from .errors import StreamingUnsupported

        raise StreamingUnsupported(self.name)
        yield  # pragma: no cover - makes this an async generator, like an override

    async def unload(self) -> bool:
        return True

    # -- codec helpers -----------------------------------------------------------
    def decode(self, request_input: RequestInput, default_codec: Any = None) -> Any:
        """Decode one input by its content type (input > metadata > ``default_codec``)."""
        from .codecs import decode_request_input

        decoded = decode_request_input(request_input, self._inputs_index)
        if decoded is not None:
            return decoded
        if default_codec is not None:
            return default_codec.decode_input(request_input)
        return request_input.data

    def decode_request(self, inference_request: InferenceRequest, default_codec: Any = None) -> Any:
        """Decode a whole request by content type (request > model default > ``default_codec``)."""
        from .codecs import decode_inference_request

        decoded = decode_inference_request(
            inference_request, self._settings.parameters.content_type, self._inputs_index
        )
        if decoded is not None:
            return decoded
        if default_codec is not None:
            return default_codec.decode_request(inference_request)
        return inference_request

    def encode_response(self, payload: Any, default_codec: Any = None) -> InferenceResponse:
        """Encode a whole response with the request codec that fits ``payload``."""
        from .codecs import find_request_codec

        codec = find_request_codec(payload=payload) or default_codec
        if codec is None:
            raise TypeError(f"no request codec can encode {type(payload).__name__}")
        response: InferenceResponse = codec.encode_response(self.name, payload, self.version)
        return response

    def encode(
        self, payload: Any, request_output: RequestOutput, default_codec: Any = None
    ) -> ResponseOutput:
        """Encode one output, by the requested content type or the codec that fits."""
        from .codecs import find_input_codec

        content_type = request_output.parameters.content_type if request_output.parameters else None
        codec = find_input_codec(content_type=content_type) if content_type else None
        codec = codec or find_input_codec(payload=payload) or default_codec
        if codec is None:
            raise TypeError(f"no codec can encode {type(payload).__name__}")
        output: ResponseOutput = codec.encode_output(request_output.name, payload)
        return output
