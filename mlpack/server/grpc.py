"""gRPC transport: ``inference.GRPCInferenceService`` on grpc.aio over the model registry.

Decoding and encoding live in ``mlpack.proto.convert``; every RPC hands over to the
registry. ``MLPackError`` becomes a gRPC status in one place (``_STATUS_CODES``). The
server also carries the standard health service (``grpc.health.v1``) and reflection.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from .. import tracing
from ..engine.registry import ModelRegistry
from ..errors import (
    DeadlineExceeded,
    InvalidRequest,
    MLPackError,
    ModelNotFound,
    ResourceExhausted,
    StreamingUnsupported,
    release,
)
from ..proto import convert
from ..proto import inference_pb2 as pb
from ..proto import inference_pb2_grpc as pb_grpc
from ..types import MetadataServerResponse, Parameters, RepositoryIndexResponse, trusted
from .disclosure import public_message
from .grpc_handlers import Undecodable, add_inference_service
from .grpc_streams import StreamCall
from .headers import outgoing_headers, response_headers
from .sockets import PortInUse
from .trace_context import traced_rpc

logger = logging.getLogger("mlpack.grpc")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
# Large enough for a 64 MiB tensor plus its envelope; ``grpc_max_message_length`` overrides.
DEFAULT_MAX_MESSAGE_LENGTH = 256 * 1024 * 1024

# The one place where an error's HTTP status becomes a gRPC status code.
_STATUS_CODES: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,  # REST only (a body's media type)
    431: grpc.StatusCode.RESOURCE_EXHAUSTED,
    499: grpc.StatusCode.CANCELLED,
    500: grpc.StatusCode.INTERNAL,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
# Metadata gRPC itself owns; a model may not set it.
_RESERVED_METADATA = frozenset({"te", "user-agent", "content-type", "authority", "host"})

Response = TypeVar("Response")
Handler = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[Response]]


def status_code(error: MLPackError) -> grpc.StatusCode:
    """The gRPC status code for an mlpack error (INTERNAL for unmapped statuses)."""
    if isinstance(error, StreamingUnsupported):
        return grpc.StatusCode.UNIMPLEMENTED
    return _STATUS_CODES.get(int(error.status), grpc.StatusCode.INTERNAL)


class CallMetrics(Protocol):
    """Where RPC counts go (``ServerMetrics`` implements it)."""

    def grpc_call_started(self, method: str) -> None: ...

    def grpc_call_handled(self, method: str, code: str) -> None: ...


class _Observed:
    """Holds the optional ``CallMetrics`` the decorated RPC methods report to."""

    call_metrics: CallMetrics | None = None
    # A model's own failure answers a fixed sentence and an error id (``model_error_detail``).
    generic_model_errors: bool = False


def _handles_errors(handler: Handler[Response]) -> Handler[Response]:
    """Turn errors into statuses and count the call (started, handled with its code).

    Counting here rather than in a server interceptor keeps the hot path short: grpc.aio
    runs interceptors on every call and they wrap the handler anew each time.
    """
    method = handler.__name__

    @functools.wraps(handler)
    async def wrapper(self: _Observed, request: Any, context: grpc.aio.ServicerContext) -> Response:
        metrics = self.call_metrics
        if metrics is not None:
            metrics.grpc_call_started(method)
        code = "OK"
        failure: tuple[grpc.StatusCode, str] | None = None
        try:
            if isinstance(request, Undecodable):
                raise InvalidRequest(request.message)
            if tracing.active:
                return await traced_rpc(method, context, lambda: handler(self, request, context))
            return await handler(self, request, context)
        except MLPackError as error:
            status = status_code(error)
            code = status.name
            generic = getattr(self, "generic_model_errors", False)
            failure = (status, public_message(error, generic))
            release(error)  # the request's data goes now, not at the next gc cycle
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        except grpc.aio.AbortError:
            status = context.code()
            code = status.name if isinstance(status, grpc.StatusCode) else "UNKNOWN"
            raise
        except Exception as error:  # a bug: answer INTERNAL, keep serving, log the traceback
            code = "INTERNAL"
            logger.exception("unhandled error in %s", method)
            failure = (grpc.StatusCode.INTERNAL, f"internal error: {error!r}")
            release(error)
        finally:
            if metrics is not None:
                metrics.grpc_call_handled(method, code)
        await context.abort(*failure)
        raise AssertionError("unreachable")  # context.abort raises

    return wrapper


def _metadata(headers: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """Headers a model returned, made safe for gRPC metadata (lower-case, no reserved keys)."""
    safe = []
    for name, value in response_headers(headers).items():
        key = name.lower()
        if key.startswith(("grpc-", ":")) or key.endswith("-bin") or key in _RESERVED_METADATA:
            continue
        safe.append((key, value))
    return tuple(safe)


def _version(value: str) -> str | None:
    return value or None


class InferenceServicer(_Observed, pb_grpc.GRPCInferenceServiceServicer):
    """The protocol's nine RPCs over one registry.

    Parameters:
        registry: the models served.
        server_metadata: what ServerMetadata answers (shared with REST).
        max_message_length: the largest response this server may send, in bytes.
        call_metrics: where RPC counts go (None: not counted).
    """

    def __init__(
        self,
        registry: ModelRegistry,
        server_metadata: MetadataServerResponse,
        max_message_length: int = DEFAULT_MAX_MESSAGE_LENGTH,
        call_metrics: CallMetrics | None = None,
    ) -> None:
        self.registry = registry
        self.call_metrics = call_metrics
        self.max_message_length = max_message_length
        self._server_metadata = convert.server_metadata_to_pb(server_metadata)

    # -- server ------------------------------------------------------------------------
    @_handles_errors
    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @_handles_errors
    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.registry.is_ready())

    @_handles_errors
    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ServerMetadataResponse:
        return self._server_metadata

    # -- models ------------------------------------------------------------------------
    @_handles_errors
    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelReadyResponse:
        # An unknown model is NOT_FOUND; a known one answers whether it can serve.
        ready = self.registry.ready(request.name, _version(request.version))
        return pb.ModelReadyResponse(ready=ready)

    @_handles_errors
    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelMetadataResponse:
        metadata = await self.registry.metadata(request.name, _version(request.version))
        return convert.model_metadata_to_pb(metadata)

    @_handles_errors
    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        """Answers serialized bytes (``grpc_handlers.RAW_RESPONSES``): the size check reads
        the length of what is sent, with no second pass over the message."""
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            raise DeadlineExceeded(
                f"model '{request.model_name}': the client's deadline passed before compute"
            )
        with tracing.stage("decode"):
            inference_request = convert.model_infer_request_to_types(request)
        headers = dict(context.invocation_metadata() or ())
        parameters = inference_request.parameters
        if parameters is None:  # values from grpc itself: no validation needed
            inference_request.parameters = trusted(Parameters, headers=headers)
        else:
            parameters.headers = headers
        response = await self.registry.infer(
            request.model_name, request.model_version or None, inference_request, remaining
        )
        if response.parameters is not None:
            returned = outgoing_headers(response.parameters)
            if returned is not None:
                context.set_trailing_metadata(_metadata(returned))
        # tritonclient's as_numpy reads raw contents only: answer raw to raw requests.
        with tracing.stage("encode"):
            message: bytes = convert.types_to_model_infer_response(
                response, raw=bool(request.raw_input_contents)
            ).SerializeToString()
        if len(message) > self.max_message_length:
            raise ResourceExhausted(
                f"model '{request.model_name}': the response is {len(message)} bytes, more "
                f"than grpc_max_message_length ({self.max_message_length} bytes)"
            )
        return message

    async def ModelStreamInfer(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        """Streams: see ``grpc_streams``; errors of one request travel as ``error_message``."""
        method = "ModelStreamInfer"
        metrics = self.call_metrics
        if metrics is not None:
            metrics.grpc_call_started(method)
        code = "OK"
        call = StreamCall(
            self.registry, context, self.max_message_length, self.generic_model_errors
        )
        try:
            async for message in call.run(request_iterator):
                yield message
            if call.stalled is not None:  # ended by StreamCall (DEADLINE_EXCEEDED)
                code = grpc.StatusCode.DEADLINE_EXCEEDED.name
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        except MLPackError as error:
            status = status_code(error)
            code = status.name
            await context.abort(status, public_message(error, self.generic_model_errors))
        except grpc.aio.AbortError:
            status = context.code()
            code = status.name if isinstance(status, grpc.StatusCode) else "UNKNOWN"
            raise
        except Exception as error:  # a bug: answer INTERNAL, keep serving, log the traceback
            code = "INTERNAL"
            logger.exception("unhandled error in %s", method)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {error!r}")
        finally:
            if metrics is not None:
                metrics.grpc_call_handled(method, code)

    # -- repository extension ----------------------------------------------------------
    @_handles_errors
    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryIndexResponse:
        items = self.registry.index(request.ready or None)
        return convert.repository_index_to_pb(RepositoryIndexResponse(items))

    @_handles_errors
    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryModelLoadResponse:
        if not request.model_name:
            raise ModelNotFound("")
        await self.registry.request_load(request.model_name)
        return pb.RepositoryModelLoadResponse()

    @_handles_errors
    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: grpc.aio.ServicerContext
    ) -> pb.RepositoryModelUnloadResponse:
        await self.registry.request_unload(request.model_name)
        return pb.RepositoryModelUnloadResponse()


class _RegistryHealth(_Observed, health.aio.HealthServicer):  # type: ignore[misc]
    """``grpc.health.v1``: SERVING when the server is ready (as ``/v2/health/ready``)."""

    def __init__(self, registry: ModelRegistry, call_metrics: CallMetrics | None = None) -> None:
        super().__init__()
        self._registry = registry
        self.call_metrics = call_metrics

    async def refresh(self) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if self._registry.is_ready()
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in ("", SERVICE_NAME):
            if self._server_status.get(service) != status:
                await self.set(service, status)

    @_handles_errors
    async def Check(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self.refresh()
        return await super().Check(request, context)


def _reflection_pool() -> descriptor_pool.DescriptorPool:
    """Descriptors reflection answers from: mlpack's (private) inference service and the extras."""
    pool = descriptor_pool.DescriptorPool()
    for file in (pb.DESCRIPTOR, health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR):
        pool.AddSerializedFile(file.serialized_pb)
    return pool


class GrpcTransport:
    """The grpc.aio server: bound in ``__init__`` (a busy port fails here), then started.

    Parameters:
        registry: the models served.
        server_metadata: what ServerMetadata answers.
        host, port: where to listen (port 0 picks a free one; see ``port``).
        max_message_length: the send and receive limit in bytes (None: 256 MiB).
        call_metrics: where RPC counts go (e.g. ``ServerMetrics``; None: not counted).
        max_concurrent_rpcs: most RPCs in flight (None: no limit).
        interceptors: run before every call (e.g. the access policy's, ``grpc_access``).
        credentials: TLS server credentials (``server/tls.py``; None: plaintext).
        reuse_port: share the port with the other front-ends (SO_REUSEPORT).
    """

    def __init__(
        self,
        registry: ModelRegistry,
        server_metadata: MetadataServerResponse,
        host: str,
        port: int,
        max_message_length: int | None = None,
        call_metrics: CallMetrics | None = None,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
        credentials: grpc.ServerCredentials | None = None,
        max_concurrent_rpcs: int | None = None,
        reuse_port: bool = False,
    ) -> None:
        limit = max_message_length or DEFAULT_MAX_MESSAGE_LENGTH
        self._health_task: asyncio.Task[None] | None = None
        self._server = grpc.aio.server(
            interceptors=list(interceptors),
            options=[
                ("grpc.max_send_message_length", limit),
                ("grpc.max_receive_message_length", limit),
                # Off: a second server fails on a busy port instead of sharing it. On for
                # front-ends, which share the port the supervisor reserved (SO_REUSEPORT).
                ("grpc.so_reuseport", 1 if reuse_port else 0),
            ],
            # Beyond it gRPC answers RESOURCE_EXHAUSTED at once.
            maximum_concurrent_rpcs=max_concurrent_rpcs,
        )
        self.servicer = InferenceServicer(registry, server_metadata, limit, call_metrics)
        add_inference_service(self.servicer, self._server)
        self.health = _RegistryHealth(registry, call_metrics)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME),
            self._server,
            pool=_reflection_pool(),
        )
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            if credentials is None:
                self.port = self._server.add_insecure_port(address)
            else:
                self.port = self._server.add_secure_port(address, credentials)
        except RuntimeError:  # grpcio >= 1.60 raises; older versions return 0
            self.port = 0
        if not self.port:
            raise PortInUse(
                f"cannot listen for gRPC on {host}:{port}: address already in use or not available"
            )

    async def start(self) -> None:
        await self._server.start()
        self._health_task = asyncio.create_task(self._follow_readiness())

    async def _follow_readiness(self, interval: float = 0.5) -> None:
        """Keep health watchers current as models load and unload."""
        while True:
            await self.health.refresh()
            await asyncio.sleep(interval)

    async def stop(self, grace: float) -> None:
        """Stop accepting RPCs, let in-flight ones finish for up to ``grace`` seconds."""
        if self._health_task is not None:
            self._health_task.cancel()
        await self.health.enter_graceful_shutdown()
        await self._server.stop(grace)
