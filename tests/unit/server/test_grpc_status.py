"""The one table from mlpack errors to gRPC status codes, checked for every error class."""

from __future__ import annotations

import grpc
import pytest

from mlpack import errors
from mlpack.server.grpc import _metadata, status_code
from tests.helpers.errors import samples

# What each HTTP status means on gRPC; every status in the tree must be listed here.
EXPECTED = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    431: grpc.StatusCode.RESOURCE_EXHAUSTED,
    499: grpc.StatusCode.CANCELLED,
    500: grpc.StatusCode.INTERNAL,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
    130: grpc.StatusCode.INTERNAL,  # a batch job interrupted (the CLI's exit code)
}
# Errors whose gRPC code is more precise than their HTTP status says.
BY_CLASS = {errors.StreamingUnsupported: grpc.StatusCode.UNIMPLEMENTED}
ERRORS = samples()


@pytest.mark.parametrize("error", ERRORS, ids=[type(e).__name__ for e in ERRORS])
def test_every_error_maps_to_a_status(error: errors.MLPackError) -> None:
    assert int(error.status) in EXPECTED, f"add {error.status} to the gRPC status table"
    assert status_code(error) is BY_CLASS.get(type(error), EXPECTED[int(error.status)])


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
