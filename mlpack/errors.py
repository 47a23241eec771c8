"""The mlpack exception tree.

Every error a user can cause carries the HTTP status it maps to; transports
translate statuses in one place each (REST: ``{"error": msg}``, gRPC: a status code).
This module imports nothing web- or gRPC-related.

    MLPackError (500)
    ├── InvalidRequest (400)            bad JSON, bad tensors, unknown outputs
    │   ├── InvalidSettings (400)       settings files that do not validate
    │   └── UnsupportedMediaType (415)  a REST body whose Content-Type the route does not take
    ├── ModelNotFound (404)             unknown model or version
    ├── ModelNotReady (503)             known but not ready (loading, failed, unloaded)
    ├── Overloaded (503)                queue full; carries ``retry_after``
    ├── RequestCancelled (499)          the client went away before compute
    ├── DeadlineExceeded (504)          the client's deadline passed before compute
    ├── ResourceExhausted (413)         a message beyond the configured size
    ├── ModelError (500)                the model's own code raised
    ├── WorkerError (503)               a worker process died with the request in flight
    └── ModelLoadError (500)            a model could not be loaded
"""

from __future__ import annotations

from http import HTTPStatus


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


class UnsupportedMediaType(InvalidRequest):
    """A REST request body in a media type the route does not accept."""

    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


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


class ModelError(MLPackError):
    """The model's own code raised while serving a request."""

    status = HTTPStatus.INTERNAL_SERVER_ERROR


class WorkerError(MLPackError):
    """A worker process died while it held the request."""

    status = HTTPStatus.SERVICE_UNAVAILABLE


class ModelLoadError(MLPackError):
    """A model could not be loaded."""

    status = HTTPStatus.INTERNAL_SERVER_ERROR
