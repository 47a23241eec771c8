from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mlpack.codecs.raw import array_to_raw
from mlpack.codecs.tensors import DATATYPE_TO_DTYPE, decode_tensor
from mlpack.errors import InvalidRequest, ModelError
from mlpack.proto import convert
from mlpack.proto import inference_pb2 as pb
from mlpack.types import (
    Datatype,
    InferenceRequest,
    InferenceResponse,
    MetadataModelResponse,
    MetadataServerResponse,
    MetadataTensor,
    Parameters,
    RepositoryIndexResponse,
    RepositoryIndexResponseItem,
    RequestInput,
    RequestOutput,
    ResponseOutput,
    State,
)

NUMERIC = [d for d in Datatype if d is not Datatype.BYTES]
TYPED = [d for d in Datatype if d is not Datatype.FP16]

shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)


@st.composite
def tensors(
    draw: Any, datatypes: tuple[Datatype, ...] = tuple(Datatype)
) -> tuple[Datatype, np.ndarray]:
    datatype = draw(st.sampled_from(datatypes))
    shape = draw(shapes)
    if datatype is Datatype.BYTES:
        count = int(np.prod(shape))
        values = draw(st.lists(st.binary(max_size=12), min_size=count, max_size=count))
        array = np.empty(count, dtype=object)
        array[:] = values
        return datatype, array.reshape(shape)
    dtype = DATATYPE_TO_DTYPE[datatype]
    elements = None
    if dtype.kind == "f":
        elements = st.floats(allow_nan=True, allow_infinity=True, width=dtype.itemsize * 8)
    return datatype, draw(hnp.arrays(dtype, shape, elements=elements))


def _bits(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array).tobytes()


def assert_same(actual: Any, expected: np.ndarray, *, exact_nan: bool = True) -> None:
    """Bit-exact comparison; ``exact_nan=False`` only asks NaN to stay NaN (any payload)."""
    if expected.dtype == object:
        assert list(actual) == list(expected.reshape(-1))
        return
    assert isinstance(actual, np.ndarray)
    assert actual.dtype == expected.dtype
    flat = expected.reshape(-1)
    if exact_nan or flat.dtype.kind != "f":
        assert _bits(actual) == _bits(flat)
        return
    nan = np.isnan(flat)
    assert np.array_equal(np.isnan(actual), nan)
    assert _bits(actual[~nan]) == _bits(flat[~nan])


def _wire(message: Any) -> Any:
    return type(message).FromString(message.SerializeToString())


# ---- round trips --------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(tensor=tensors(), raw=st.booleans())
def test_request_round_trip(tensor: tuple[Datatype, np.ndarray], raw: bool) -> None:
    datatype, array = tensor
    request = InferenceRequest(
        id="r1",
        parameters=Parameters(content_type="np"),
        inputs=[
            RequestInput(
                name="x",
                shape=list(array.shape),
                datatype=datatype,
                data=array.reshape(-1)
                if datatype is not Datatype.BYTES
                else list(array.reshape(-1)),
            )
        ],
        outputs=[RequestOutput(name="y", parameters=Parameters(content_type="np"))],
    )
    message = _wire(convert.model_infer_request_from_types(request, "m", raw=raw))
    assert bool(message.raw_input_contents) == (raw or datatype is Datatype.FP16)
    decoded = convert.model_infer_request_to_types(message)
    (request_input,) = decoded.inputs
    assert request_input.datatype is datatype and request_input.shape == list(array.shape)
    assert request_input.data is request_input._decoded
    assert decode_tensor(request_input) is request_input._decoded
    assert_same(request_input._decoded, array, exact_nan=bool(message.raw_input_contents))
    assert decoded.id == "r1" and decoded.parameters == Parameters(content_type="np")
    assert decoded.outputs == [RequestOutput(name="y", parameters=Parameters(content_type="np"))]


@settings(max_examples=150, deadline=None)
@given(tensor=tensors(), raw=st.booleans())
def test_response_round_trip(tensor: tuple[Datatype, np.ndarray], raw: bool) -> None:
    datatype, array = tensor
    response = InferenceResponse(
        model_name="m",
        model_version="2",
        id="r1",
        outputs=[ResponseOutput(name="y", shape=list(array.shape), datatype=datatype, data=array)],
    )
    message = _wire(convert.types_to_model_infer_response(response, raw=raw))
    assert bool(message.raw_output_contents) == (raw or datatype is Datatype.FP16)
    decoded = convert.model_infer_response_to_types(message)
    assert (decoded.model_name, decoded.model_version, decoded.id) == ("m", "2", "r1")
    (output,) = decoded.outputs
    assert output.datatype is datatype and output.shape == list(array.shape)
    assert_same(output.data, array, exact_nan=bool(message.raw_output_contents))


@pytest.mark.parametrize("datatype", NUMERIC)
def test_raw_layout_is_little_endian(datatype: Datatype) -> None:
    array = np.arange(5).astype(DATATYPE_TO_DTYPE[datatype])
    raw = array_to_raw(array, datatype)
    assert raw == array.astype(DATATYPE_TO_DTYPE[datatype].newbyteorder("<")).tobytes()


def test_float_specials_survive_typed_contents() -> None:
    values = np.array([np.nan, -0.0, np.inf, -np.inf, 1e-45], dtype=np.float32)
    response = InferenceResponse(
        model_name="m",
        outputs=[ResponseOutput(name="y", shape=[5], datatype=Datatype.FP32, data=values)],
    )
    message = _wire(convert.types_to_model_infer_response(response, raw=False))
    assert len(message.outputs[0].contents.fp32_contents) == 5
    assert_same(convert.model_infer_response_to_types(message).outputs[0].data, values)


def test_string_outputs_are_utf8() -> None:
    response = InferenceResponse(
        model_name="m",
        outputs=[
            ResponseOutput(name="y", shape=[2], datatype=Datatype.BYTES, data=["hé", b"\xff"])
        ],
    )
    typed = convert.types_to_model_infer_response(response, raw=False)
    assert list(typed.outputs[0].contents.bytes_contents) == ["hé".encode(), b"\xff"]
    raw = convert.types_to_model_infer_response(response, raw=True)
    assert raw.raw_output_contents[0] == b"\x03\x00\x00\x00h\xc3\xa9\x01\x00\x00\x00\xff"


def test_response_json_style_data_and_nan_null() -> None:
    response = InferenceResponse(
        model_name="m",
        outputs=[
            ResponseOutput(
                name="y",
                shape=[2, 2],
                datatype=Datatype.FP64,
                data=[[1.5, None], [float("nan"), 2]],
            )
        ],
    )
    message = convert.types_to_model_infer_response(response, raw=True)
    flat = np.frombuffer(message.raw_output_contents[0], dtype="<f8")
    assert flat[0] == 1.5 and np.isnan(flat[1]) and np.isnan(flat[2]) and flat[3] == 2


def test_fp16_response_is_raw_even_when_typed_is_asked() -> None:
    response = InferenceResponse(
        model_name="m",
        outputs=[
            ResponseOutput(name="a", shape=[1], datatype=Datatype.INT32, data=[7]),
            ResponseOutput(name="b", shape=[1], datatype=Datatype.FP16, data=[0.5]),
        ],
    )
    message = convert.types_to_model_infer_response(response, raw=False)
    assert len(message.raw_output_contents) == 2
    assert not message.outputs[0].HasField("contents")


def test_response_data_that_does_not_match_the_shape_is_a_model_error() -> None:
    response = InferenceResponse(
        model_name="m",
        outputs=[
            ResponseOutput(
                name="y", shape=[3], datatype=Datatype.FP32, data=np.zeros(2, dtype=np.float32)
            )
        ],
    )
    with pytest.raises(ModelError, match=r"output 'y' .*3 elements but data has 2"):
        convert.types_to_model_infer_response(response, raw=True)
    response.outputs[0].data = [1, 2]
    with pytest.raises(ModelError, match=r"output 'y' .*3 elements but data has 2"):
        convert.types_to_model_infer_response(response, raw=True)


def test_headers_stay_out_of_the_message() -> None:
    response = InferenceResponse(
        model_name="m",
        outputs=[],
        parameters=Parameters(content_type="np", headers={"x-a": "1"}, extra_flag=True),
    )
    message = convert.types_to_model_infer_response(response)
    assert dict(message.parameters) == {
        "content_type": pb.InferParameter(string_param="np"),
        "extra_flag": pb.InferParameter(bool_param=True),
    }


# ---- zero-copy raw decoding ---------------------------------------------------------------


def test_raw_decoding_is_a_view_not_a_python_list() -> None:
    values = np.random.default_rng(0).random(1_000_000, dtype=np.float32)
    message = pb.ModelInferRequest(model_name="m")
    message.inputs.add(name="x", datatype="FP32", shape=[1000, 1000])
    message.raw_input_contents.append(values.tobytes())
    (request_input,) = convert.model_infer_request_to_types(message).inputs
    flat = request_input._decoded
    assert isinstance(flat, np.ndarray) and flat.dtype == np.float32 and flat.shape == (1_000_000,)
    assert not flat.flags.owndata and isinstance(flat.base, bytes)  # np.frombuffer over the bytes
    assert len(flat.base) == values.nbytes
    assert request_input.data is flat and decode_tensor(request_input) is flat
    assert np.array_equal(flat, values)


# ---- rejections ---------------------------------------------------------------------------


def _request(
    *tensors: tuple[str, str, list[int]], raw: list[bytes] | None = None
) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name="m")
    for name, datatype, shape in tensors:
        message.inputs.add(name=name, datatype=datatype, shape=shape)
    message.raw_input_contents.extend(raw or [])
    return message


def _rejects(message: pb.ModelInferRequest, pattern: str) -> None:
    with pytest.raises(InvalidRequest, match=pattern):
        convert.model_infer_request_to_types(message)


def test_rejects_mixing_raw_and_typed() -> None:
    message = _request(("a", "INT32", [1]), ("b", "INT32", [1]), raw=[b"\0" * 4, b"\0" * 4])
    message.inputs[1].contents.int_contents.append(1)
    _rejects(message, r"input 'b' has typed contents but the message also has raw_input_contents")


def test_rejects_wrong_number_of_raw_entries() -> None:
    message = _request(("a", "INT32", [1]), ("b", "INT32", [1]), raw=[b"\0" * 4])
    _rejects(message, r"raw_input_contents has 1 entries but there are 2 inputs \('a', 'b'\)")


@pytest.mark.parametrize(
    ("datatype", "field", "expected"),
    [
        ("INT8", "fp32_contents", "int_contents"),
        ("UINT64", "int64_contents", "uint64_contents"),
        ("FP64", "fp32_contents", "fp64_contents"),
        ("BYTES", "int_contents", "bytes_contents"),
        ("BOOL", "uint_contents", "bool_contents"),
    ],
)
def test_rejects_values_in_the_wrong_typed_field(datatype: str, field: str, expected: str) -> None:
    message = _request(("x", datatype, [1]))
    getattr(message.inputs[0].contents, field).append(1)
    _rejects(
        message,
        rf"input 'x' \({datatype}\): values are in {field} but {datatype} "
        rf"tensors use {expected}",
    )


def test_rejects_typed_fp16() -> None:
    message = _request(("h", "FP16", [1]))
    message.inputs[0].contents.fp32_contents.append(0.5)
    _rejects(message, r"input 'h' \(FP16\): FP16 has no typed contents field .*raw_input_contents")


@pytest.mark.parametrize(
    ("datatype", "size"), [("FP32", 23), ("FP32", 25), ("INT64", 0), ("BOOL", 7), ("FP16", 24)]
)
def test_rejects_raw_length_not_matching_shape(datatype: str, size: int) -> None:
    message = _request(("x", datatype, [2, 3]), raw=[b"\0" * size])
    _rejects(
        message,
        rf"input 'x' \({datatype}\): raw_input_contents\[0\] has {size} bytes but "
        rf"shape \[2, 3\] needs \d+ \(6 elements × \d bytes\)",  # noqa: RUF001 (the server writes this sign)
    )


def test_rejects_bytes_length_prefix_past_the_buffer() -> None:
    raw = struct.pack("<I", 2) + b"ok" + struct.pack("<I", 10) + b"short"
    _rejects(
        _request(("s", "BYTES", [2]), raw=[raw]),
        r"input 's' \(BYTES\): raw_input_contents\[0\]: element 1 declares 10 bytes at "
        r"offset 6 but only 5 remain",
    )


def test_rejects_bytes_truncated_length_prefix() -> None:
    raw = struct.pack("<I", 1) + b"a" + b"\x01\x00"
    _rejects(
        _request(("s", "BYTES", [2]), raw=[raw]),
        r"input 's' \(BYTES\): raw_input_contents\[0\] ends inside the length prefix of "
        r"element 1",
    )


def test_rejects_bytes_element_count() -> None:
    raw = struct.pack("<I", 1) + b"a"
    _rejects(
        _request(("s", "BYTES", [3]), raw=[raw]),
        r"input 's' \(BYTES\): raw_input_contents\[0\] holds 1 elements but the shape "
        r"implies 3",
    )


def test_rejects_raw_bool_bytes_other_than_0_and_1() -> None:
    _rejects(
        _request(("b", "BOOL", [2]), raw=[b"\x01\x02"]),
        r"input 'b' \(BOOL\): raw_input_contents\[0\] holds a byte other than 0 or 1",
    )


def test_rejects_typed_values_out_of_range() -> None:
    message = _request(("x", "INT8", [2]))
    message.inputs[0].contents.int_contents.extend([1, 300])
    _rejects(message, r"input 'x' \(INT8\): value 300 is out of range \[-128, 127\]")


def test_rejects_typed_element_count() -> None:
    message = _request(("x", "FP32", [2, 2]))
    message.inputs[0].contents.fp32_contents.extend([1.0, 2.0, 3.0])
    _rejects(message, r"input 'x' \(FP32\): shape implies 4 elements but data has 3")


def test_rejects_unknown_datatype_and_negative_shape() -> None:
    _rejects(_request(("x", "FLOAT32", [1])), r"input 'x': unknown datatype 'FLOAT32'")
    _rejects(_request(("x", "FP32", [-1, 2])), r"input 'x': shape \[-1, 2\] has a negative")


def test_rejects_ill_typed_parameters() -> None:
    message = _request(("x", "FP32", [0]))
    message.parameters["content_type"].int64_param = 3
    _rejects(message, r"invalid parameters: content_type")


# ---- parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "choice"),
    [
        (True, "bool_param"),
        (-(2**63), "int64_param"),
        (2**63 - 1, "int64_param"),
        (2**64 - 1, "uint64_param"),
        (0.25, "double_param"),
        ("np", "string_param"),
        (np.int32(4), "int64_param"),
        (np.float32(0.5), "double_param"),
    ],
)
def test_parameter_values_round_trip(value: Any, choice: str) -> None:
    parameter = _wire(convert.value_to_infer_parameter(value))
    assert parameter.WhichOneof("parameter_choice") == choice
    assert convert.infer_parameter_to_value(parameter) == value


def test_parameter_edge_cases() -> None:
    assert convert.infer_parameter_to_value(pb.InferParameter()) is None
    assert convert.value_to_infer_parameter({"a": [1]}).string_param == '{"a": [1]}'
    with pytest.raises(
        InvalidRequest, match=r"parameter 'big': integer .* does not fit in 64 bits"
    ):
        convert.value_to_infer_parameter(2**64, key="big")
    with pytest.raises(InvalidRequest, match="parameter 'o': a object cannot be sent"):
        convert.value_to_infer_parameter(object(), key="o")


def test_repository_parameters() -> None:
    message = pb.RepositoryModelLoadRequest(model_name="m")
    message.parameters["a"].bytes_param = b"\x00"
    message.parameters["b"].bool_param = False
    message.parameters["c"].CopyFrom(pb.ModelRepositoryParameter())
    assert convert.repository_parameters_from_pb(message.parameters) == {"a": b"\x00", "b": False}


# ---- metadata and repository --------------------------------------------------------------


def test_server_metadata_round_trip() -> None:
    metadata = MetadataServerResponse(
        name="mlpack", version="0.1.0", extensions=["model_repository"]
    )
    assert (
        convert.server_metadata_from_pb(_wire(convert.server_metadata_to_pb(metadata))) == metadata
    )


def test_model_metadata_round_trip() -> None:
    metadata = MetadataModelResponse(
        name="iris",
        versions=["1", "2"],
        platform="sklearn",
        inputs=[
            MetadataTensor(
                name="x",
                datatype=Datatype.FP32,
                shape=[-1, 4],
                parameters=Parameters(content_type="np"),
            )
        ],
        outputs=[MetadataTensor(name="y", datatype=Datatype.INT64, shape=[-1])],
        parameters=Parameters(content_type="pd"),
    )
    message = _wire(convert.model_metadata_to_pb(metadata))
    assert list(message.inputs[0].shape) == [-1, 4]
    assert convert.model_metadata_from_pb(message) == metadata
    bare = MetadataModelResponse(name="m")
    assert convert.model_metadata_from_pb(_wire(convert.model_metadata_to_pb(bare))) == bare


def test_repository_index_round_trip() -> None:
    index = RepositoryIndexResponse(
        [
            RepositoryIndexResponseItem(
                name=f"m{i}",
                version="1" if i else None,
                state=state,
                reason="boom" if state is State.UNAVAILABLE else "",
            )
            for i, state in enumerate(
                [State.READY, State.UNAVAILABLE, State.LOADING, State.UNLOADING]
            )
        ]
    )
    message = _wire(convert.repository_index_to_pb(index))
    assert [m.state for m in message.models] == ["READY", "UNAVAILABLE", "LOADING", "UNLOADING"]
    assert convert.repository_index_from_pb(message) == index
    odd = pb.RepositoryIndexResponse()
    odd.models.add(name="m", state="WARMING")
    assert convert.repository_index_from_pb(odd).root[0].state is State.UNKNOWN
    request = convert.repository_index_request_from_pb(pb.RepositoryIndexRequest(ready=True))
    assert request.ready is True
