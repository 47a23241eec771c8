"""The access policy on gRPC: a server interceptor answering UNAUTHENTICATED / PERMISSION_DENIED.

Installed only when the policy can refuse something (keys set, or the control plane
restricted), so an open server's hot path pays nothing. The key travels in the
metadata entry named like the REST header (``authorization: Bearer KEY`` by default).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from ..errors import MLPackError
from .auth import AccessPolicy, grpc_scope
from .grpc import status_code


class AccessInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses calls the policy does not allow, before any handler runs."""

    def __init__(self, policy: AccessPolicy) -> None:
        self.policy = policy

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        kind, changes_state = grpc_scope(details.method)
        if kind != "open":
            value = None
            for key, item in details.invocation_metadata or ():
                if key == self.policy.header and isinstance(item, str):
                    value = item
                    break
            try:
                self.policy.check(kind, changes_state, self.policy.credential(value))
            except MLPackError as error:
                handler = await continuation(details)
                return (
                    None
                    if handler is None
                    else _denying(handler, status_code(error), error.message)
                )
        return await continuation(details)


def _denying(
    handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str
) -> grpc.RpcMethodHandler:
    """A handler of the same kind as ``handler`` that only aborts with ``code``."""

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)

    async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)
        yield  # pragma: no cover - makes this an async generator

    kinds = {
        "unary_unary": grpc.unary_unary_rpc_method_handler,
        "unary_stream": grpc.unary_stream_rpc_method_handler,
        "stream_unary": grpc.stream_unary_rpc_method_handler,
        "stream_stream": grpc.stream_stream_rpc_method_handler,
    }
    for kind, make in kinds.items():
        if getattr(handler, kind) is not None:
            behaviour = stream if kind.endswith("_stream") else unary
            return make(
                behaviour,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return handler
