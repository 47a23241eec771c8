"""Requests a web page could forge: cross-site ``Origin``s and non-JSON bodies.

A page on another site can send a "simple" POST (``Content-Type: text/plain``, no CORS
preflight) to a server on the visitor's network. ``BrowserGuard`` refuses:

* any request other than GET/HEAD/OPTIONS whose ``Origin`` is neither this server's
  own (the ``Host`` header) nor allowed by ``cors_settings`` (403);
* a body on a state-changing route (the repository API) whose ``Content-Type`` is not
  ``application/json`` (415). Clients that send no ``Content-Type`` (curl without
  ``-H``, tritonclient) are not browsers' simple requests and are let through.

It sits outside the infer fast path, so every route is covered.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import MLPackError, PermissionDenied, UnsupportedMediaType
from ..settings import CORSSettings

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_JSON = "application/json"


class BrowserGuard:
    """ASGI middleware: refuse cross-site state-changing requests and non-JSON bodies."""

    def __init__(self, app: Any, cors: CORSSettings | None = None, root_path: str = "") -> None:
        self.app = app
        self.root_path = root_path
        self.allowed = frozenset(cors.allow_origins) if cors else frozenset()
        self.pattern = (
            re.compile(cors.allow_origin_regex) if cors and cors.allow_origin_regex else None
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] not in _SAFE_METHODS:
            origin = host = content_type = None
            for key, value in scope["headers"]:
                if key == b"origin":
                    origin = value.decode("latin-1")
                elif key == b"host":
                    host = value.decode("latin-1")
                elif key == b"content-type":
                    content_type = value.decode("latin-1")
            try:
                if origin is not None:
                    self._check_origin(origin, host)
                if content_type is not None and self._changes_state(scope["path"]):
                    media = content_type.split(";", 1)[0].strip().lower()
                    if media != _JSON:
                        raise UnsupportedMediaType(
                            f"this route accepts only {_JSON} bodies, "
                            f"not {media or 'an empty type'}"
                        )
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

    def _changes_state(self, path: str) -> bool:
        if self.root_path and path.startswith(self.root_path):
            path = path[len(self.root_path) :]
        return path.startswith("/v2/repository/")
