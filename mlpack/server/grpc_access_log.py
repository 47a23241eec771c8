"""Access log for gRPC: one ``mlpack.access`` line per call, like the REST access log.

A server interceptor wraps each method handler (unary or streaming) and, when the call
ends, logs the peer, the full method name, the status code, the duration, the request id
(the ``x-request-id`` metadata entry, else the request's own ``id``) and the model. It is
installed only when ``access_log`` is on, so the hot path pays nothing otherwise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

logger = logging.getLogger("mlpack.access")

_REQUEST_ID = "x-request-id"


class AccessLogInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Logs every gRPC call when it finishes (whatever its outcome)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None:
            return None
        method: str = details.method
        metadata_id = _metadata_request_id(details.invocation_metadata)
        options = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            behaviour = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                started = time.perf_counter()
                try:
                    return await behaviour(request, context)
                finally:
                    _log(method, context, started, metadata_id, request)

            return grpc.unary_unary_rpc_method_handler(unary_unary, **options)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _streamed(handler.unary_stream, method, metadata_id, first_is_request=True),
                **options,
            )
        if handler.stream_unary is not None:
            behaviour_su = handler.stream_unary

            async def stream_unary(requests: Any, context: grpc.aio.ServicerContext) -> Any:
                started = time.perf_counter()
                try:
                    return await behaviour_su(requests, context)
                finally:
                    _log(method, context, started, metadata_id, None)

            return grpc.stream_unary_rpc_method_handler(stream_unary, **options)
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                _streamed(handler.stream_stream, method, metadata_id, first_is_request=False),
                **options,
            )
        return handler


def _streamed(
    behaviour: Callable[[Any, grpc.aio.ServicerContext], Any],
    method: str,
    metadata_id: str | None,
    first_is_request: bool,
) -> Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]:
    """Wrap a handler that answers with a stream (an async generator or an awaitable)."""

    async def streamed(argument: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        started = time.perf_counter()
        try:
            answer = behaviour(argument, context)
            if hasattr(answer, "__aiter__"):
                async for message in answer:
                    yield message
            else:  # a handler that writes with context.write() and returns
                await answer
        finally:
            _log(method, context, started, metadata_id, argument if first_is_request else None)

    return streamed


def _metadata_request_id(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key.lower() == _REQUEST_ID:
            return str(value)
    return None


def _log(
    method: str,
    context: grpc.aio.ServicerContext,
    started: float,
    metadata_id: str | None,
    request: Any,
) -> None:
    duration_ms = (time.perf_counter() - started) * 1000.0
    code = _status_name(context)
    request_id = metadata_id or str(getattr(request, "id", "") or "") or "-"
    model = str(getattr(request, "model_name", "") or "")
    version = str(getattr(request, "model_version", "") or "")
    if model and version:
        model = f"{model}:{version}"
    peer = context.peer() or "-"
    logger.info(
        '%s "gRPC %s" %s %.2fms request_id=%s%s',
        peer,
        method,
        code,
        duration_ms,
        request_id,
        f" model={model}" if model else "",
        extra={
            "server": "grpc",
            "method": "gRPC",
            "path": method,
            "status": code,
            "duration_ms": round(duration_ms, 3),
            "request_id": request_id,
            "client": peer,
            "model": model,
        },
    )


def _status_name(context: grpc.aio.ServicerContext) -> str:
    """The call's status as a name (OK unless a handler set or aborted with another)."""
    try:
        code = context.code()
    except Exception:  # older grpc.aio contexts lack code()
        code = None
    if code is None:
        return "OK"
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    for status in grpc.StatusCode:  # an int from the C core
        if status.value[0] == code:
            return str(status.name)
    return str(code)
