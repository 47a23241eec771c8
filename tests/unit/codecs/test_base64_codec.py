import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlpack.codecs import Base64Codec
from mlpack.errors import InvalidRequest
from mlpack.types import RequestInput


@given(st.lists(st.binary()))
def test_round_trip(payload: list[bytes]) -> None:
    output = Base64Codec.encode_output("b", payload)
    assert output.data == [base64.b64encode(item).decode() for item in payload]
    assert Base64Codec.decode_output(output) == payload
    request_input = Base64Codec.encode_input("b", payload)
    assert Base64Codec.decode_input(RequestInput(**request_input.model_dump())) == payload


def test_decodes_text_and_bytes_elements() -> None:
    request_input = RequestInput(name="img", shape=[2], datatype="BYTES", data=["AP8=", b"aGk="])
    assert Base64Codec.decode_input(request_input) == [b"\x00\xff", b"hi"]


def test_invalid_base64_names_input_and_element() -> None:
    request_input = RequestInput(name="img", shape=[2], datatype="BYTES", data=["aGk=", "!!"])
    with pytest.raises(InvalidRequest, match=r"'img'.*element 1"):
        Base64Codec.decode_input(request_input)


def test_can_encode() -> None:
    assert Base64Codec.can_encode([b"a"])
    assert not Base64Codec.can_encode(["a"])
