"""``trusted_hosts``: refuse requests whose ``Host`` is not this server's (DNS rebinding).

Starlette's ``TrustedHostMiddleware`` decides; its plain-text refusal is replaced by the
server's usual ``{"error": ...}`` (400). It wraps the whole REST app (fast path included)
and the metrics app.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.middleware.trustedhost import TrustedHostMiddleware

from ..errors import InvalidRequest

_PASSED = "mlpack.trusted_host"


async def _accept(scope: Any, receive: Any, send: Any) -> None:
    scope[_PASSED] = True


async def _discard(message: Any) -> None:
    return None


class TrustedHosts:
    """ASGI middleware: only ``hosts`` (Starlette patterns: ``example.com``, ``*.example.com``)."""

    def __init__(self, app: Any, hosts: Sequence[str]) -> None:
        self.app = app
        self._check = TrustedHostMiddleware(_accept, allowed_hosts=list(hosts), www_redirect=False)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            await self._check(scope, receive, _discard)
            if not scope.pop(_PASSED, False):
                from .error_handlers import error_response

                host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
                error = InvalidRequest(f"Host {host!r} is not one of this server's trusted_hosts")
                await error_response(error, scope["path"])(scope, receive, send)
                return
        await self.app(scope, receive, send)
