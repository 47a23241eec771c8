"""``mlserver.errors``: MLServer's error classes, as mlpack errors with the same statuses."""

from __future__ import annotations

from http import HTTPStatus

from mlpack.errors import MLPackError

__mlpack_compat__ = True


class MLServerError(MLPackError):
    """An error with an HTTP status (400 unless given), answered as ``{"error": msg}``."""

    def __init__(self, msg: str, status_code: int = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(msg)
        self.status = status_code
        self.status_code = status_code


def _which(name: str, version: str | None) -> str:
    return f"Model {name}" + (f" with version {version}" if version else "")


class InvalidModelURI(MLServerError):
    def __init__(self, name: str, model_uri: str | None = None) -> None:
        where = f" ({model_uri})" if model_uri else ""
        super().__init__(
            f"Invalid URI specified for model {name}{where}", HTTPStatus.UNPROCESSABLE_ENTITY
        )


class ModelNotFound(MLServerError):
    def __init__(self, name: str, version: str | None = None) -> None:
        super().__init__(f"{_which(name, version)} not found", HTTPStatus.NOT_FOUND)


class ModelNotReady(MLServerError):
    def __init__(self, name: str, version: str | None = None) -> None:
        super().__init__(f"{_which(name, version)} is not ready yet.", HTTPStatus.BAD_REQUEST)


class InferenceError(MLServerError):
    def __init__(self, msg: str) -> None:
        super().__init__(msg, HTTPStatus.BAD_REQUEST)


class ModelParametersMissing(MLServerError):
    def __init__(self, model_name: str) -> None:
        super().__init__(f"Parameters missing for model {model_name}", HTTPStatus.BAD_REQUEST)


__all__ = [
    "InferenceError",
    "InvalidModelURI",
    "MLServerError",
    "ModelNotFound",
    "ModelNotReady",
    "ModelParametersMissing",
]
