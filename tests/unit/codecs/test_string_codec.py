import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlpack.codecs import StringCodec, StringRequestCodec
from mlpack.errors import InvalidRequest
from mlpack.types import Datatype, RequestInput, ResponseOutput


@given(st.lists(st.text()))
def test_round_trip(payload: list[str]) -> None:
    request_input = StringCodec.encode_input("s", payload)
    assert request_input.shape == [len(payload), 1]
    assert request_input.data == [item.encode() for item in payload]
    assert StringCodec.decode_input(RequestInput(**request_input.model_dump())) == payload
    output = StringCodec.encode_output("s", payload)
    assert output.data == payload
    assert StringCodec.decode_output(output) == payload


def test_encode_input_as_text() -> None:
    assert StringCodec.encode_input("s", ["a"], use_bytes=False).data == ["a"]


def test_nested_data_is_flattened_not_lost() -> None:
    request_input = RequestInput(
        name="s", shape=[2, 2], datatype="BYTES", data=[["a", "b"], ["c", "d"]]
    )
    assert StringCodec.decode_input(request_input) == ["a", "b", "c", "d"]


def test_single_string_and_bytes() -> None:
    assert StringCodec.decode_input(
        RequestInput(name="s", shape=[1], datatype="BYTES", data="hello")
    ) == ["hello"]
    assert StringCodec.decode_input(
        RequestInput(name="s", shape=[2], datatype="BYTES", data=[b"h\xc3\xa9", "x"])
    ) == ["hé", "x"]


def test_invalid_utf8_names_input() -> None:
    request_input = RequestInput(name="txt", shape=[1], datatype="BYTES", data=[b"\xff"])
    with pytest.raises(InvalidRequest, match=r"'txt'.*UTF-8"):
        StringCodec.decode_input(request_input)


def test_wrong_datatype_names_input() -> None:
    request_input = RequestInput(name="txt", shape=[1], datatype="FP32", data=[1.0])
    with pytest.raises(InvalidRequest, match=r"'txt'.*BYTES.*FP32"):
        StringCodec.decode_input(request_input)


def test_element_count_mismatch() -> None:
    request_input = RequestInput(name="txt", shape=[3], datatype="BYTES", data=["a"])
    with pytest.raises(InvalidRequest, match="'txt'"):
        StringCodec.decode_input(request_input)


def test_decode_output_from_response() -> None:
    output = ResponseOutput(name="o", shape=[2, 1], datatype=Datatype.BYTES, data=[b"x", "y"])
    assert StringCodec.decode_output(output) == ["x", "y"]


def test_can_encode() -> None:
    assert StringCodec.can_encode(["a", "b"])
    assert not StringCodec.can_encode(["a", 1])
    assert not StringCodec.can_encode("ab")


def test_request_codec() -> None:
    request = StringRequestCodec.encode_request(["a", "b"])
    assert request.parameters is not None and request.parameters.content_type == "str"
    assert StringRequestCodec.decode_request(request) == ["a", "b"]
    response = StringRequestCodec.encode_response("m", ["z"])
    assert StringRequestCodec.decode_response(response) == ["z"]
