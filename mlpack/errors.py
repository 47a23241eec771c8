"""The mlpack exception tree: every exception mlpack raises on purpose is drawn here.

Every error carries the HTTP status it maps to; transports translate statuses in one
place each (REST: ``server/error_handlers.py``, ``{"error": msg}`` and ``Retry-After``
on every 503; gRPC: ``server/grpc.py``, a status code). The CLI prints the message and
exits non-zero. This module imports nothing web- or gRPC-related, and every error
survives pickling (errors cross the worker-process boundary).

    MLPackError (500)
    ├── InvalidRequest (400)            bad JSON, bad tensors, unknown outputs
    │   ├── InvalidSettings (400)       settings files that do not validate
    │   ├── InvalidLine (400)           a batch-job input line that is not a usable request
    │   ├── UnsupportedMediaType (415)  a REST body whose Content-Type the route does not take
    │   └── StreamingUnsupported (400)  a stream request to a model without ``predict_stream``
    ├── Unauthenticated (401)           no credentials, or credentials that match no key
    ├── PermissionDenied (403)          valid credentials without the scope, or a switched-off API
    ├── ModelNotFound (404)             unknown model or version
    ├── ModelNotReady (503)             known but not ready (loading, failed, unloaded)
    ├── Overloaded (503)                queue full; carries ``retry_after``
    ├── RequestCancelled (499)          the client went away before compute
    ├── DeadlineExceeded (504)          the client's deadline passed before compute
    │   └── StreamStalled (504)         a stream's client took nothing for ``stream_stall_timeout``
    ├── ResourceExhausted (413)         a message beyond the configured size
    │   └── RequestTooLarge (413)       a REST body beyond ``max_request_size``
    ├── HeadersTooLarge (431)           a REST request head beyond the header limits
    ├── RequestTimeout (408)            a REST request head or body did not arrive in time
    ├── ModelError (500)                the model's own code raised
    ├── WorkerError (503)               a worker process died with the request in flight
    │   └── NoCapacity (503)            no worker can serve the model right now
    ├── ShuttingDown (503)              the server stopped before the request was computed
    ├── ModelLoadError (500)            a model could not be loaded
    │   └── InvalidEnvironment (500)    a model's environment cannot be unpacked or used
    ├── PortInUse (500)                 a port the server needs is taken
    ├── BuildError (500)                an image or environment could not be built
    ├── ForeignRequirementError (400)   a requirements file names ``mlpack``, someone else's library
    ├── ScaffoldError (500)             ``mlpack init`` cannot create the project
    ├── ClientError (500)               a V2 client's request failed (``mlpack.client``)
    │   ├── TransportError (500)        no answer: refused, reset, TLS, protocol
    │   │   └── Timeout (500)           no answer in time
    │   ├── UnsendableRequest (400)     the request cannot be encoded for the wire (never sent)
    │   └── ServerError (its status)    the server answered with an error status
    ├── SplitError (500)                a batch job's merged response cannot be split back
    ├── OutputError (400)               a batch job's output cannot be written or resumed
    └── JobInterrupted (130)            a batch job was stopped before every line was written

Classes defined here are also importable from the module that raises them (e.g.
``mlpack.client.errors.ServerError``, ``mlpack.server.sockets.PortInUse``).
"""

from __future__ import annotations

import traceback
from http import HTTPStatus
from typing import Any


def release(error: BaseException) -> None:
    """Let go of what a handled ``error`` keeps alive: the locals of every frame in its
    traceback, and in those of its cause and context. A traceback otherwise holds the
    request's decoded data until the cycle collector runs (frame -> local -> error ->
    traceback -> frame). Call it once the error has been answered and logged."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if current.__traceback__ is not None:
            traceback.clear_frames(current.__traceback__)
        current = current.__cause__ or current.__context__


# Statuses a client may send again: overload, throttling and server-side failures.
RETRYABLE_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))


class MLPackError(Exception):
    """Base class of every error mlpack raises on purpose."""

    status: int = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[object, ...]:
        # Keep errors picklable across worker processes, whatever the subclass's __init__.
        return (_rebuild_error, (type(self), self.message, self.__dict__))


def _rebuild_error(cls: type[MLPackError], message: str, state: dict[str, object]) -> MLPackError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class InvalidRequest(MLPackError):
    """The request is malformed or does not match the protocol or the model."""

    status = HTTPStatus.BAD_REQUEST


class InvalidSettings(InvalidRequest):
    """A settings file or value does not validate."""


class InvalidLine(InvalidRequest):
    """A batch-job input line that is not a usable inference request; ``reason`` says why."""

    def __init__(self, reason: str, request_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.request_id = request_id


class UnsupportedMediaType(InvalidRequest):
    """A REST request body in a media type the route does not accept."""

    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class StreamingUnsupported(InvalidRequest):
    """A stream request to a model that does not implement ``predict_stream`` (gRPC:
    UNIMPLEMENTED)."""

    def __init__(self, model: str, message: str | None = None) -> None:
        super().__init__(
            message
            or f"model '{model}' does not implement predict_stream(), so it cannot answer "
            "stream requests; use infer instead"
        )
        self.model = model


class Unauthenticated(MLPackError):
    """The request carries no credentials, or credentials that match no configured key."""

    status = HTTPStatus.UNAUTHORIZED


class PermissionDenied(MLPackError):
    """The credentials are valid but lack the scope, or the operation is switched off."""

    status = HTTPStatus.FORBIDDEN


class ModelNotFound(MLPackError):
    """No model (or version) with that name is known."""

    status = HTTPStatus.NOT_FOUND

    def __init__(self, name: str, version: str | None = None) -> None:
        where = f"model '{name}'" if version is None else f"model '{name}' version '{version}'"
        super().__init__(f"{where} not found")
        self.name = name
        self.version = version


class ModelNotReady(MLPackError):
    """The model is known but cannot serve right now."""

    status = HTTPStatus.SERVICE_UNAVAILABLE


class Overloaded(MLPackError):
    """Too much work is queued; the client should retry later."""

    status = HTTPStatus.SERVICE_UNAVAILABLE

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RequestCancelled(MLPackError):
    """The client disconnected or cancelled before the request was computed."""

    status = 499


class DeadlineExceeded(MLPackError):
    """The client's deadline passed before the request was computed."""

    status = HTTPStatus.GATEWAY_TIMEOUT


class ResourceExhausted(MLPackError):
    """A message is larger than the configured limit."""

    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class RequestTooLarge(ResourceExhausted):
    """A REST request body is larger than ``max_request_size``."""


class HeadersTooLarge(MLPackError):
    """A REST request's head has too many or too large header fields."""

    status = 431


class RequestTimeout(MLPackError):
    """A REST request's head or body did not arrive within its timeout."""

    status = HTTPStatus.REQUEST_TIMEOUT


class ModelError(MLPackError):
    """The model's own code raised while serving a request."""

    status = HTTPStatus.INTERNAL_SERVER_ERROR


class WorkerError(MLPackError):
    """A worker process died while it held the request."""

    status = HTTPStatus.SERVICE_UNAVAILABLE


class NoCapacity(WorkerError):
    """No live worker can take the model's requests now (all dead, restarting, or hung)."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StreamStalled(DeadlineExceeded):
    """A stream's client stopped reading: a response could not be handed to it within
    ``stream_stall_timeout``, so the stream was abandoned."""


class ShuttingDown(MLPackError):
    """The server is stopping and did not compute the request; another replica can."""

    status = HTTPStatus.SERVICE_UNAVAILABLE


class ModelLoadError(MLPackError):
    """A model could not be loaded."""

    status = HTTPStatus.INTERNAL_SERVER_ERROR


class InvalidEnvironment(ModelLoadError):
    """An environment cannot be unpacked or used."""


class PortInUse(MLPackError):
    """A port the server needs is already taken."""


class BuildError(MLPackError):
    """An image or environment could not be built."""


class ForeignRequirementError(MLPackError):
    """A requirements file names ``mlpack``: on the package index, an unrelated C++ library."""

    status = HTTPStatus.BAD_REQUEST


class ScaffoldError(MLPackError):
    """``mlpack init`` cannot create the project (unknown template, bad name, folder in use)."""


class ClientError(MLPackError):
    """A request to an inference server failed."""

    retryable: bool = False
    retry_after: float | None = None


class TransportError(ClientError):
    """The server could not be reached or the connection broke."""

    retryable = True


class Timeout(TransportError):
    """The server did not answer in time."""


class UnsendableRequest(ClientError):
    """The request cannot be encoded for the transport, so it was never sent (like a 400)."""

    status = HTTPStatus.BAD_REQUEST

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.reason = message


class ServerError(ClientError):
    """The server answered with a non-2xx status; ``status`` and ``retry_after`` tell why."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.reason = message
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.status in RETRYABLE_STATUSES


class SplitError(MLPackError):
    """A batch job's merged response cannot be split back per request."""


class OutputError(MLPackError):
    """A batch job's output cannot be written, or a resume does not match the job."""

    status = HTTPStatus.BAD_REQUEST


class JobInterrupted(MLPackError):
    """A batch job was stopped (Ctrl-C or SIGTERM) before every line was written.

    ``stats`` holds the job's figures so far (``mlpack.infer.job.JobStats``).
    """

    status = 130

    def __init__(self, message: str, stats: Any = None) -> None:
        super().__init__(message)
        self.stats = stats
