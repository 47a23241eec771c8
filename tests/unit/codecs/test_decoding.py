import numpy as np
import pytest

from mlpack.codecs import (
    decode_inference_request,
    decode_request_input,
    encode_inference_response,
    encode_request,
    encode_response_output,
)
from mlpack.codecs.decoding import decode_response_output
from mlpack.errors import InvalidRequest
from mlpack.types import (
    Datatype,
    InferenceRequest,
    MetadataTensor,
    RequestInput,
    RequestOutput,
    ResponseOutput,
)


def _meta(name: str, content_type: str) -> dict[str, MetadataTensor]:
    return {
        name: MetadataTensor(
            name=name, datatype="BYTES", shape=[-1], parameters={"content_type": content_type}
        )
    }


def test_input_content_type_wins_over_metadata() -> None:
    request_input = RequestInput(
        name="x", shape=[1], datatype="BYTES", data=["aGk="], parameters={"content_type": "str"}
    )
    assert decode_request_input(request_input, _meta("x", "base64")) == ["aGk="]


def test_metadata_content_type_used_when_input_has_none() -> None:
    request_input = RequestInput(name="x", shape=[1], datatype="BYTES", data=["aGk="])
    assert decode_request_input(request_input, _meta("x", "base64")) == [b"hi"]
    assert decode_request_input(request_input, _meta("other", "base64")) is None
    assert decode_request_input(request_input, {}) is None


def test_unknown_input_content_type() -> None:
    request_input = RequestInput(
        name="x", shape=[1], datatype="BYTES", data=["a"], parameters={"content_type": "nope"}
    )
    with pytest.raises(InvalidRequest, match=r"input 'x'.*'nope'"):
        decode_request_input(request_input, {})


def _request(content_type: str | None) -> InferenceRequest:
    return InferenceRequest(
        parameters={"content_type": content_type} if content_type else None,
        inputs=[{"name": "a", "shape": [2], "datatype": "BYTES", "data": ["1", "2"]}],
    )


def test_request_content_type_wins_over_default() -> None:
    assert decode_inference_request(_request("str"), default_content_type="pd") == ["1", "2"]
    frame = decode_inference_request(_request(None), default_content_type="pd")
    assert frame["a"].tolist() == ["1", "2"]
    assert decode_inference_request(_request(None)) is None


def test_request_level_pandas_sees_metadata() -> None:
    # "1" is not valid base64: the error proves the column used the metadata's content type.
    with pytest.raises(InvalidRequest, match="'a' \\(base64\\)"):
        decode_inference_request(_request("pd"), metadata_inputs=_meta("a", "base64"))


def test_unknown_request_content_type() -> None:
    with pytest.raises(InvalidRequest, match=r"request.*'zzz'"):
        decode_inference_request(_request("zzz"))


def test_encode_response_output_precedence() -> None:
    requested = RequestOutput(name="o", parameters={"content_type": "base64"})
    out = encode_response_output([b"hi"], requested, _meta("o", "str"))
    assert out is not None and out.name == "o" and out.data == ["aGk="]
    out = encode_response_output(["hi"], RequestOutput(name="o"), _meta("o", "str"))
    assert out is not None and out.parameters is not None and out.parameters.content_type == "str"
    out = encode_response_output(np.array([1, 2]))
    assert out is not None and out.name == "output-0" and out.shape == [2, 1]
    assert encode_response_output(object()) is None


def test_encode_inference_response() -> None:
    response = encode_inference_response(np.array([[1.0]]), "m", "v")
    assert response is not None
    assert (response.model_name, response.model_version) == ("m", "v")
    assert response.outputs[0].data == [1.0]
    assert encode_inference_response(object(), "m") is None
    response = encode_inference_response(["a"], "m", content_type="str")
    assert response is not None and response.outputs[0].data == ["a"]


def test_client_encode_request() -> None:
    request = encode_request(np.ones((1, 2), dtype=np.float32))
    assert request.inputs[0].datatype is Datatype.FP32
    request = encode_request([b"hi"])  # only an input codec fits
    assert request.inputs[0].parameters.content_type == "base64"  # type: ignore[union-attr]
    assert request.inputs[0].data == [b"aGk="]
    with pytest.raises(InvalidRequest, match="object"):
        encode_request(object())


def test_client_decode_response_output() -> None:
    numbers = ResponseOutput(name="o", shape=[2], datatype=Datatype.INT8, data=[1, 2])
    assert decode_response_output(numbers).tolist() == [[1], [2]]
    text = ResponseOutput(name="o", shape=[1], datatype=Datatype.BYTES, data=["é"])
    assert decode_response_output(text) == ["é"]
    raw = ResponseOutput(name="o", shape=[1], datatype=Datatype.BYTES, data=[b"\xff"])
    assert decode_response_output(raw).reshape(-1).tolist() == [b"\xff"]
    tagged = ResponseOutput(
        name="o",
        shape=[1],
        datatype=Datatype.BYTES,
        data=["aGk="],
        parameters={"content_type": "base64"},
    )
    assert decode_response_output(tagged) == [b"hi"]
