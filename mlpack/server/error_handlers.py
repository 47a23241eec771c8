"""Errors → HTTP responses: the one place the REST transport translates them.

``error_response`` turns any exception into ``{"error": message}`` with the error's
status; every 503 carries ``Retry-After``. The Starlette app registers
``EXCEPTION_HANDLERS`` and the infer fast path (``rest.InferFastPath``) calls
``error_response`` itself, so both answer the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..errors import MLPackError, release
from .disclosure import public_message

logger = logging.getLogger("mlpack.rest")

JSON = "application/json"
SERVICE_UNAVAILABLE = 503


def retry_after(seconds: float = 1.0) -> dict[str, str]:
    """The ``Retry-After`` header for a 503 (whole seconds, at least 1)."""
    return {"Retry-After": str(max(1, round(seconds)))}


def error_response(
    error: Exception, where: str = "", generic_model_errors: bool = False
) -> Response:
    """``{"error": message}`` with the status ``error`` maps to (500 for a bug, logged).

    With ``generic_model_errors`` a model's own failure answers a fixed sentence and an
    error id instead of its message (``server/disclosure.py``).
    """
    if isinstance(error, MLPackError):
        status, message = int(error.status), public_message(error, generic_model_errors)
    else:  # a bug: answer 500, keep serving, log the traceback
        logger.error("unhandled error on %s", where, exc_info=error)
        status, message = 500, f"internal error: {error!r}"
    headers = None
    if status == SERVICE_UNAVAILABLE:
        headers = retry_after(getattr(error, "retry_after", None) or 1.0)
    release(error)  # answered: the request's data goes now, not at the next gc cycle
    return Response(orjson.dumps({"error": message}), status, headers, media_type=JSON)


async def _mlpack_error(request: Request, exc: Exception) -> Response:
    generic = getattr(request.app.state, "generic_model_errors", False)
    return error_response(exc, request.url.path, generic)


async def _bug(request: Request, exc: Exception) -> Response:
    """A bug in a route: answer 500; Starlette then re-raises so the server logs the traceback."""
    message = f"internal error: {exc!r}"
    return Response(orjson.dumps({"error": message}), 500, media_type=JSON)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (no route, wrong method) in the same ``{"error": ...}`` shape."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    if status == 404:
        detail = f"no route for {request.method} {request.url.path}"
    headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}  # 405: Allow
    if status == SERVICE_UNAVAILABLE:
        headers.update(retry_after())
    return Response(orjson.dumps({"error": detail}), status, headers or None, media_type=JSON)


Handler = Callable[[Request, Exception], Any]
EXCEPTION_HANDLERS: Mapping[Any, Handler] = {
    MLPackError: _mlpack_error,
    Exception: _bug,
    HTTPException: _http_error,
    404: _http_error,
    405: _http_error,
}
