"""Server spans: W3C ``traceparent`` in and out on REST (ASGI) and gRPC.

Installed only when tracing is on (``mlpack.tracing.active``): the REST wrapper goes
outside everything (the infer fast path included) and the gRPC hook runs inside each
RPC's error handling. Both make the caller's trace the parent and return the server
span's ``traceparent`` to the caller.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .. import tracing

T = TypeVar("T")


class TracingASGI:
    """ASGI middleware: one SERVER span per HTTP request, parent taken from ``traceparent``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not tracing.active:
            await self.app(scope, receive, send)
            return
        carrier = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope.get("headers") or []
        }
        method, path = scope.get("method", ""), scope.get("path", "")
        attributes: dict[str, Any] = {"http.request.method": method, "url.path": path}
        model = _model_attributes(path[len(scope.get("root_path", "")) :])
        attributes.update(model)
        with tracing.span(
            f"{method} {path}",
            attributes,
            context=tracing.extract(carrier),
            kind=tracing.server_kind(),
        ) as current:
            returned = [
                (k.encode("latin-1"), v.encode("latin-1")) for k, v in tracing.inject().items()
            ]

            async def send_traced(message: Any) -> None:
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    current.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        tracing.set_error(current, f"HTTP {status}")
                    message = {**message, "headers": [*(message.get("headers") or []), *returned]}
                await send(message)

            await self.app(scope, receive, send_traced)


def _model_attributes(path: str) -> dict[str, str]:
    parts = path.split("/")
    if len(parts) > 3 and parts[1] == "v2" and parts[2] == "models" and parts[3]:
        found = {"mlpack.model.name": parts[3]}
        if len(parts) > 5 and parts[4] == "versions" and parts[5]:
            found["mlpack.model.version"] = parts[5]
        return found
    return {}


async def traced_rpc(method: str, context: Any, call: Callable[[], Awaitable[T]]) -> T:
    """Run one RPC in a SERVER span whose parent is the caller's ``traceparent``; the
    span's own ``traceparent`` goes back in the initial metadata."""
    carrier = {
        key: value for key, value in (context.invocation_metadata() or ()) if isinstance(value, str)
    }
    with tracing.span(
        f"inference.GRPCInferenceService/{method}",
        {"rpc.system": "grpc", "rpc.method": method},
        context=tracing.extract(carrier),
        kind=tracing.server_kind(),
    ):
        await context.send_initial_metadata(tuple(tracing.inject().items()))
        return await call()
