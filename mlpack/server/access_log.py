"""Access log: one line per HTTP request, outermost around the REST (or metrics) app.

uvicorn's own access log is off in every embedded server: its logger is process-wide,
so a second server (metrics) configured without it silenced the REST one. This ASGI
wrapper sits outside the infer fast path too, so every request is covered. A request
without ``x-request-id`` gets one (added to the request headers the model sees and
returned in the response), so the line, the model's logs and the client can be matched.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from .logging import server_label

logger = logging.getLogger("mlpack.access")

_REQUEST_ID = b"x-request-id"


class AccessLog:
    """ASGI middleware writing ``mlpack.access`` lines (method, path, status, duration,
    request id, model), labelled with ``server`` (``rest`` or ``metrics``).

    Parameters:
        app: the ASGI app to wrap.
        server: which server's requests these are (shown on every line).
    """

    def __init__(self, app: Any, server: str = "rest") -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        status = 500
        header = (_REQUEST_ID, request_id.encode("latin-1"))

        async def send_logged(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers") or [])
                if not any(name.lower() == _REQUEST_ID for name, _ in headers):
                    headers.append(header)
                message = {**message, "headers": headers}
            await send(message)

        with server_label("metrics" if self.server == "metrics" else ""):
            try:
                await self.app(scope, receive, send_logged)
            finally:
                self._log(scope, status, time.perf_counter() - started, request_id)

    def _log(self, scope: Any, status: int, duration: float, request_id: str) -> None:
        method = scope.get("method", "")
        path: str = scope.get("path", "")
        query = scope.get("query_string") or b""
        target = path + ("?" + query.decode("latin-1") if query else "")
        client = scope.get("client")
        peer = f"{client[0]}:{client[1]}" if client else "-"
        root_path: str = scope.get("root_path", "")
        model = _model_of(
            path[len(root_path) :] if root_path and path.startswith(root_path) else path
        )
        version = scope.get("http_version", "1.1")
        logger.info(
            '%s "%s %s HTTP/%s" %d %.2fms request_id=%s%s',
            peer,
            method,
            target,
            version,
            status,
            duration * 1000.0,
            request_id,
            f" model={model}" if model else "",
            extra={
                "server": self.server,
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(duration * 1000.0, 3),
                "request_id": request_id,
                "client": peer,
                "model": model,
            },
        )


def _request_id(scope: Any) -> str:
    """The caller's ``x-request-id``, or a new one added to the request's headers."""
    headers: list[tuple[bytes, bytes]] = scope.get("headers") or []
    for name, value in headers:
        if name.lower() == _REQUEST_ID:
            return value.decode("latin-1")
    request_id = uuid.uuid4().hex
    scope["headers"] = [*headers, (_REQUEST_ID, request_id.encode("latin-1"))]
    return request_id


def _model_of(path: str) -> str:
    """``name`` or ``name:version`` for paths below ``/v2/models/``; ``""`` otherwise."""
    parts = path.split("/")
    if len(parts) > 3 and parts[1] == "v2" and parts[2] == "models" and parts[3]:
        if len(parts) > 5 and parts[4] == "versions" and parts[5]:
            return f"{parts[3]}:{parts[5]}"
        return parts[3]
    return ""
