"""Parsing a REST inference body (``rest_io``)."""

from __future__ import annotations

import pytest

from mlpack.codecs.tensors import decode_tensor
from mlpack.errors import InvalidRequest
from mlpack.server.rest_io import parse_inference_request
from mlpack.types import RequestInput


def _parsed(body: bytes) -> RequestInput:
    return parse_inference_request(body).inputs[0]


def test_a_body_without_boolean_literals_skips_the_boolean_scan() -> None:
    numbers = _parsed(b'{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[1.5,2]}]}')
    assert numbers.__pydantic_private__ == {"_decoded": None, "_no_booleans": True}
    assert decode_tensor(numbers).tolist() == [1.5, 2.0]


@pytest.mark.parametrize(
    "body",
    [
        b'{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[true,1.5]}]}',
        # "true" elsewhere (here in a string) keeps the scan on: the boolean is still found.
        b'{"id":"true","inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[1.5,false]}]}',
    ],
)
def test_booleans_among_numbers_from_a_json_body_are_still_rejected(body: bytes) -> None:
    request_input = _parsed(body)
    assert request_input.__pydantic_private__ is not None
    assert not request_input.__pydantic_private__["_no_booleans"]
    with pytest.raises(InvalidRequest, match="mix of numbers and booleans"):
        decode_tensor(request_input)


def test_request_headers_read_once_match_starlettes_view() -> None:
    from starlette.requests import Request

    from mlpack.server.rest_io import request_headers

    raw = [(b"host", b"a"), (b"x-twice", b"first"), (b"content-type", b"j"), (b"x-twice", b"2")]
    request = Request({"type": "http", "headers": raw})
    headers = request_headers(request)
    assert (
        headers == dict(request.headers) == {"host": "a", "x-twice": "first", "content-type": "j"}
    )
    assert list(headers) == ["host", "x-twice", "content-type"]
