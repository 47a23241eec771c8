"""Requests a web page could forge: cross-site ``Origin``s on state-changing methods.

A page on another site can send a "simple" POST (``Content-Type: text/plain``, no CORS
preflight) to a server on the visitor's network. ``BrowserGuard`` refuses any request
other than GET/HEAD/OPTIONS whose ``Origin`` is neither this server's own (the ``Host``
header) nor allowed by ``cors_settings`` (403). The routes themselves take only JSON
(or no ``Content-Type``) bodies (``server/media.py``: 415), so even a same-site form
cannot post to them. It sits outside the infer fast path, so every route is covered.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import MLPackError, PermissionDenied
from ..settings import CORSSettings

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class BrowserGuard:
    """ASGI middleware: refuse cross-site requests with state-changing methods."""

    def __init__(self, app: Any, cors: CORSSettings | None = None) -> None:
        self.app = app
        self.allowed = frozenset(cors.allow_origins) if cors else frozenset()
        self.pattern = (
            re.compile(cors.allow_origin_regex) if cors and cors.allow_origin_regex else None
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] not in _SAFE_METHODS:
            origin = host = None
            for key, value in scope["headers"]:
                if key == b"origin":
                    origin = value.decode("latin-1")
                elif key == b"host":
                    host = value.decode("latin-1")
            if origin is not None:
                try:
                    self._check_origin(origin, host)
                except MLPackError as error:
                    from .error_handlers import error_response

                    await error_response(error, scope["path"])(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    def _check_origin(self, origin: str, host: str | None) -> None:
        if "*" in self.allowed or origin in self.allowed:
            return
        if self.pattern is not None and self.pattern.fullmatch(origin):
            return
        _, _, netloc = origin.partition("://")
        if host and netloc and netloc.lower() == host.lower():
            return  # same origin: a page this server served
        raise PermissionDenied(
            f"cross-site request from origin {origin!r} refused: "
            "add it to cors_settings.allow_origins"
        )
