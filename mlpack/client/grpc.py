"""gRPC client for any Open Inference Protocol (V2) server: ``AsyncGrpcClient``.

Speaks ``inference.GRPCInferenceService`` through the stubs and converters in
``mlpack.proto``; tensors travel as ``raw_input_contents``. Errors map to the same
``ClientError`` tree as REST (with the matching HTTP status), so callers retry alike.
``infer_stream`` and ``generate_stream`` use ``ModelStreamInfer``: one request per call,
its responses read as they arrive; a response's ``error_message`` raises ``ServerError``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc
import numpy as np

from ..errors import MLPackError
from ..proto import convert
from ..proto import inference_pb2 as pb
from ..proto.inference_pb2_grpc import GRPCInferenceServiceStub
from ..types import (
    Datatype,
    InferenceRequest,
    InferenceResponse,
    MetadataModelResponse,
    MetadataServerResponse,
    Parameters,
    RequestInput,
)
from .errors import ServerError, Timeout, TransportError, UnsendableRequest
from .streaming import STREAM_ERROR_STATUS

Request = InferenceRequest | Mapping[str, Any]

# gRPC status → the HTTP status of the same meaning (the protocol's own mapping).
_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def _target(url: str) -> str:
    return url.split("://", 1)[-1].rstrip("/")


@contextlib.asynccontextmanager
async def _map_grpc_errors(target: str) -> AsyncIterator[None]:
    """The one place gRPC errors become mlpack client errors."""
    try:
        yield
    except grpc.aio.AioRpcError as error:
        code, details = error.code(), error.details() or ""
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            raise Timeout(f"{target}: no answer in time") from None
        if code is grpc.StatusCode.UNAVAILABLE and ("connect" in details.lower() or not details):
            raise TransportError(f"{target}: {details or 'unavailable'}") from None
        raise ServerError(_HTTP_STATUS.get(code, 500), details or code.name) from None


def _jsonable(data: Any) -> Any:
    if isinstance(data, np.ndarray):
        data = data.tolist()
    if isinstance(data, list) and data and isinstance(data[0], bytes):
        return [v.decode("utf-8", errors="replace") for v in data]
    return data


def response_to_dict(response: InferenceResponse) -> dict[str, Any]:
    """A response as the dict its REST JSON form would give (flat data, None fields left out)."""
    payload: dict[str, Any] = {"model_name": response.model_name}
    if response.model_version:
        payload["model_version"] = response.model_version
    if response.id:
        payload["id"] = response.id
    if response.parameters is not None:
        parameters = response.parameters.model_dump(exclude_none=True)
        if parameters:
            payload["parameters"] = parameters
    outputs = []
    for output in response.outputs:
        item: dict[str, Any] = {
            "name": output.name,
            "shape": list(output.shape),
            "datatype": getattr(output.datatype, "value", output.datatype),
        }
        if output.parameters is not None:
            parameters = output.parameters.model_dump(exclude_none=True)
            if parameters:
                item["parameters"] = parameters
        item["data"] = _jsonable(output.data)
        outputs.append(item)
    payload["outputs"] = outputs
    return payload


def generate_request(text_input: str, parameters: Mapping[str, Any] | None) -> InferenceRequest:
    """The generate extension's request as tensors: ``text_input`` is a BYTES input of one
    element and ``parameters`` the request parameters (the server's REST mapping)."""
    return InferenceRequest(
        inputs=[
            RequestInput(name="text_input", shape=[1], datatype=Datatype.BYTES, data=[text_input])
        ],
        parameters=Parameters(**parameters) if parameters else None,
    )


def generate_chunk(response: InferenceResponse) -> dict[str, Any]:
    """A response as the generate extension's JSON: one field per output, one element as a
    scalar (``{"text_output": "..."}``)."""
    payload = response_to_dict(response)
    chunk: dict[str, Any] = {
        key: payload[key] for key in ("model_name", "model_version", "id") if key in payload
    }
    for output in payload["outputs"]:
        data = output["data"]
        chunk[output["name"]] = data[0] if isinstance(data, list) and len(data) == 1 else data
    return chunk


def _encode(request: Request, model_name: str, model_version: str | None) -> pb.ModelInferRequest:
    """The request as a gRPC message; ``UnsendableRequest`` if it cannot be one."""
    try:
        typed = (
            request
            if isinstance(request, InferenceRequest)
            else InferenceRequest.model_validate(request)
        )
        return convert.model_infer_request_from_types(typed, model_name, model_version, raw=True)
    except MLPackError as error:
        raise UnsendableRequest(f"cannot encode the request for gRPC: {error.message}") from None
    except (ValueError, TypeError, OverflowError) as error:  # pydantic's ValidationError too
        detail = " ".join(str(error).split())
        raise UnsendableRequest(f"cannot encode the request for gRPC: {detail}") from None


class AsyncGrpcClient:
    """An asyncio V2 gRPC client over one channel.

    Parameters:
        url: ``host:port`` (a scheme, if any, is ignored).
        timeout: seconds per call.
        headers: sent as gRPC metadata with every call.
        use_ssl: a TLS channel with the system's root certificates.
        binary: accepted for symmetry with REST; tensors always travel raw.
        token: an API key, sent as ``authorization: Bearer KEY`` metadata with every call.
        ca, cert, key: PEM files: the CA that signed the server (implies TLS), and a client
            certificate and key for mutual TLS.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 60.0,
        headers: Mapping[str, str] | None = None,
        use_ssl: bool = False,
        binary: bool = True,
        token: str | None = None,
        ca: str | None = None,
        cert: str | None = None,
        key: str | None = None,
    ) -> None:
        self.target = _target(url)
        self.timeout = timeout
        merged = dict(headers or {})
        if token:
            merged["authorization"] = f"Bearer {token}"
        self._metadata = tuple((k.lower(), v) for k, v in merged.items())
        options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
        if use_ssl or ca or cert:
            from .tls import grpc_credentials

            self._channel = grpc.aio.secure_channel(
                self.target, grpc_credentials(ca, cert, key), options
            )
        else:
            self._channel = grpc.aio.insecure_channel(self.target, options)
        self._stub = GRPCInferenceServiceStub(self._channel)  # type: ignore[no-untyped-call]

    async def infer(
        self,
        model_name: str,
        request: Request,
        *,
        model_version: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> InferenceResponse:
        """Send one inference request; return an ``InferenceResponse`` (data as flat arrays)."""
        message = _encode(request, model_name, model_version)
        metadata = self._metadata + tuple((k.lower(), v) for k, v in (headers or {}).items())
        async with _map_grpc_errors(self.target):
            reply = await self._stub.ModelInfer(message, timeout=self.timeout, metadata=metadata)
        return convert.model_infer_response_to_types(reply)

    async def infer_json(
        self,
        model_name: str,
        request: Request,
        *,
        model_version: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Send one inference request; return the response as its REST JSON dict."""
        response = await self.infer(
            model_name, request, model_version=model_version, headers=headers
        )
        return response_to_dict(response)

    async def _stream(
        self, message: pb.ModelInferRequest, headers: Mapping[str, str] | None
    ) -> AsyncIterator[InferenceResponse]:
        """One request on a ``ModelStreamInfer`` call; its responses until the call ends."""
        metadata = self._metadata + tuple((k.lower(), v) for k, v in (headers or {}).items())
        call = self._stub.ModelStreamInfer(metadata=metadata)
        try:
            async with _map_grpc_errors(self.target):
                await call.write(message)
                await call.done_writing()
                while True:
                    try:
                        async with asyncio.timeout(self.timeout):
                            reply = await call.read()
                    except TimeoutError:
                        raise Timeout(
                            f"{self.target}: no streamed response in {self.timeout:g}s"
                        ) from None
                    if reply is grpc.aio.EOF:
                        return
                    if reply.error_message:
                        raise ServerError(STREAM_ERROR_STATUS, reply.error_message)
                    yield convert.model_infer_response_to_types(reply.infer_response)
        finally:
            call.cancel()  # a no-op once the call ended; stops the model when left early

    async def infer_stream(
        self,
        model_name: str,
        request: Request,
        *,
        model_version: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[InferenceResponse]:
        """Stream one request's responses over ``ModelStreamInfer``, as they arrive.

        Leave early with ``contextlib.aclosing``: closing the iterator cancels the call,
        which stops the model. An error mid-stream raises ``ServerError``.
        """
        message = _encode(request, model_name, model_version)
        async for response in self._stream(message, headers):
            yield response

    async def infer_stream_json(
        self,
        model_name: str,
        request: Request,
        *,
        model_version: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """``infer_stream`` with each response as its REST JSON dict."""
        async for response in self.infer_stream(
            model_name, request, model_version=model_version, headers=headers
        ):
            yield response_to_dict(response)

    async def generate(
        self,
        model_name: str,
        text_input: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        model_version: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The generate extension over ``ModelInfer``: ``{"text_output": ...}`` and the rest."""
        request = generate_request(text_input, parameters)
        response = await self.infer(
            model_name, request, model_version=model_version, headers=headers
        )
        return generate_chunk(response)

    async def generate_stream(
        self,
        model_name: str,
        text_input: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        model_version: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """The generate extension streamed over ``ModelStreamInfer``: one chunk per response."""
        request = generate_request(text_input, parameters)
        async for response in self.infer_stream(
            model_name, request, model_version=model_version, headers=headers
        ):
            yield generate_chunk(response)

    async def live(self) -> bool:
        async with _map_grpc_errors(self.target):
            reply = await self._stub.ServerLive(
                pb.ServerLiveRequest(), timeout=self.timeout, metadata=self._metadata
            )
        return bool(reply.live)

    async def ready(self) -> bool:
        async with _map_grpc_errors(self.target):
            reply = await self._stub.ServerReady(
                pb.ServerReadyRequest(), timeout=self.timeout, metadata=self._metadata
            )
        return bool(reply.ready)

    async def model_ready(self, model_name: str, model_version: str | None = None) -> bool:
        async with _map_grpc_errors(self.target):
            reply = await self._stub.ModelReady(
                pb.ModelReadyRequest(name=model_name, version=model_version or ""),
                timeout=self.timeout,
                metadata=self._metadata,
            )
        return bool(reply.ready)

    async def metadata(self) -> MetadataServerResponse:
        async with _map_grpc_errors(self.target):
            reply = await self._stub.ServerMetadata(
                pb.ServerMetadataRequest(), timeout=self.timeout, metadata=self._metadata
            )
        return convert.server_metadata_from_pb(reply)

    async def model_metadata(
        self, model_name: str, model_version: str | None = None
    ) -> MetadataModelResponse:
        async with _map_grpc_errors(self.target):
            reply = await self._stub.ModelMetadata(
                pb.ModelMetadataRequest(name=model_name, version=model_version or ""),
                timeout=self.timeout,
                metadata=self._metadata,
            )
        return convert.model_metadata_from_pb(reply)

    async def aclose(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncGrpcClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
