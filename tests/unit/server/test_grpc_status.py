"""The one table from mlpack errors to gRPC status codes."""

from __future__ import annotations

import grpc
import pytest

from mlpack import errors
from mlpack.server.grpc import _metadata, status_code
from mlpack.server.sockets import PortInUse

EXPECTED = [
    (errors.InvalidRequest("x"), grpc.StatusCode.INVALID_ARGUMENT),
    (errors.InvalidSettings("x"), grpc.StatusCode.INVALID_ARGUMENT),
    (errors.ModelNotFound("m"), grpc.StatusCode.NOT_FOUND),
    (errors.ModelNotReady("x"), grpc.StatusCode.UNAVAILABLE),
    (errors.Overloaded("x"), grpc.StatusCode.UNAVAILABLE),
    (errors.WorkerError("x"), grpc.StatusCode.UNAVAILABLE),
    (errors.RequestCancelled("x"), grpc.StatusCode.CANCELLED),
    (errors.DeadlineExceeded("x"), grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.ResourceExhausted("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.ModelError("x"), grpc.StatusCode.INTERNAL),
    (errors.ModelLoadError("x"), grpc.StatusCode.INTERNAL),
    (errors.MLPackError("x"), grpc.StatusCode.INTERNAL),
    (PortInUse("x"), grpc.StatusCode.INTERNAL),
]


@pytest.mark.parametrize(("error", "code"), EXPECTED, ids=[type(e).__name__ for e, _ in EXPECTED])
def test_every_error_maps_to_a_status(error: errors.MLPackError, code: grpc.StatusCode) -> None:
    assert status_code(error) is code


def test_model_headers_become_safe_metadata() -> None:
    metadata = dict(
        _metadata(
            {
                "X-Echo": "hi",
                "x-weird": "a\r\nb é",
                "bad name": "x",
                "grpc-status": "0",
                "content-type": "x",
                "x-data-bin": "y",
                "te": "x",
            }
        )
    )
    assert metadata["x-echo"] == "hi"
    assert "\n" not in metadata["x-weird"] and "\r" not in metadata["x-weird"]
    assert set(metadata) == {"x-echo", "x-weird"}
