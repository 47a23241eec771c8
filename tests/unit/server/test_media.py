"""Which request Content-Type a REST route accepts."""

from __future__ import annotations

import pytest

from mlpack.errors import InvalidRequest, UnsupportedMediaType
from mlpack.server.media import JSON_OR_BINARY, check_content_type


@pytest.mark.parametrize("value", [None, "", "application/json", "Application/JSON; charset=utf-8"])
def test_json_or_none_is_accepted(value: str | None) -> None:
    check_content_type(value)


@pytest.mark.parametrize(
    "value",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/octet-stream",
        "application/jsonx",
    ],
)
def test_anything_else_is_415(value: str) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        check_content_type(value)
    assert caught.value.status == 415 and isinstance(caught.value, InvalidRequest)
    assert value in caught.value.message


def test_binary_extension_also_takes_octet_stream() -> None:
    check_content_type("application/octet-stream", JSON_OR_BINARY)
    with pytest.raises(UnsupportedMediaType):
        check_content_type("text/plain", JSON_OR_BINARY)
