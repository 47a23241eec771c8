"""BYTES outputs as JSON strings: UTF-8 text, else base64 with the ``base64`` content type."""

from __future__ import annotations

import base64

import numpy as np
import orjson

from mlpack.codecs import Base64Codec, NumpyCodec, StringCodec
from mlpack.codecs.bytes_json import bytes_output_as_text, bytes_outputs_as_text
from mlpack.server.rest import encode_inference_response
from mlpack.types import InferenceResponse, Parameters, ResponseOutput


def test_string_codec_use_bytes_output_encodes_as_json_text() -> None:
    output = StringCodec.encode_output("out", ["héllo", "日本"], use_bytes=True)
    response = InferenceResponse(model_name="m", id="1", outputs=[output])
    body = orjson.loads(encode_inference_response(response).body)
    assert body["outputs"][0]["data"] == ["héllo", "日本"]
    assert body["outputs"][0]["parameters"] == {"content_type": "str"}


def test_numpy_object_and_nested_bytes_are_flattened_to_text() -> None:
    array = np.array([[b"a", b"b"], [b"c", "d"]], dtype=object)
    output = ResponseOutput(name="o", shape=[2, 2], datatype="BYTES", data=array)
    bytes_output_as_text(output)
    assert output.data == ["a", "b", "c", "d"]
    nested = ResponseOutput(
        name="o", shape=[2, 1], datatype="BYTES", data=[[b"x"], [bytearray(b"y")]]
    )
    bytes_output_as_text(nested)
    assert nested.data == ["x", "y"]
    fixed = ResponseOutput(name="o", shape=[2], datatype="BYTES", data=np.array([b"ab", b"c"]))
    bytes_output_as_text(fixed)
    assert fixed.data == ["ab", "c"]


def test_non_utf8_bytes_become_base64_and_decode_back() -> None:
    shared = Parameters(content_type="str")
    values = [b"\xff\x00", "text"]
    output = ResponseOutput(name="o", shape=[2], datatype="BYTES", data=values, parameters=shared)
    bytes_output_as_text(output)
    assert output.parameters is not None and output.parameters.content_type == "base64"
    assert shared.content_type == "str"  # the model's own Parameters object is left alone
    assert Base64Codec.decode_output(output) == [b"\xff\x00", b"text"]
    assert output.data == [
        base64.b64encode(b"\xff\x00").decode(),
        base64.b64encode(b"text").decode(),
    ]


def test_text_and_numeric_outputs_are_left_untouched() -> None:
    text = ["a", "b"]
    numbers = np.arange(4, dtype=np.float32)
    outputs = [
        ResponseOutput(name="t", shape=[2], datatype="BYTES", data=text),
        NumpyCodec.encode_output("n", numbers),
        ResponseOutput(name="raw", shape=[4], datatype="FP32", data=numbers),
    ]
    before = [output.data for output in outputs]
    bytes_outputs_as_text(outputs)
    assert all(output.data is data for output, data in zip(outputs, before, strict=True))
