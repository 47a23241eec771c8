import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mlpack.codecs import NumpyCodec, NumpyRequestCodec
from mlpack.codecs.tensors import to_dtype
from mlpack.errors import InvalidRequest
from mlpack.types import Datatype, InferenceRequest, InferenceResponse, RequestInput

NUMERIC = [d for d in Datatype if d is not Datatype.BYTES]


@given(data=st.data(), datatype=st.sampled_from(NUMERIC))
def test_round_trip_every_numeric_datatype(data: st.DataObject, datatype: Datatype) -> None:
    dtype = to_dtype(datatype)
    shape = data.draw(hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=4))
    array = data.draw(hnp.arrays(dtype, shape))
    # Through JSON-like data (a flat python list) and back.
    request_input = NumpyCodec.encode_input("x", array)
    assert request_input.datatype is datatype
    assert request_input.shape == list(shape)
    assert isinstance(request_input.data, list)
    decoded = NumpyCodec.decode_input(RequestInput(**request_input.model_dump()))
    assert decoded.dtype == dtype
    np.testing.assert_array_equal(decoded, array)


@given(hnp.arrays(np.float64, st.integers(1, 20)))
def test_one_dimensional_arrays_become_columns(array: np.ndarray) -> None:
    output = NumpyCodec.encode_output("y", array)
    assert output.shape == [array.shape[0], 1]
    decoded = NumpyCodec.decode_output(output)
    assert decoded.shape == (array.shape[0], 1)
    np.testing.assert_array_equal(decoded.reshape(-1), array)


def test_flat_input_decodes_as_column() -> None:
    request_input = RequestInput(name="a", shape=[3], datatype="INT64", data=[1, 2, 3])
    decoded = NumpyCodec.decode_input(request_input)
    assert decoded.shape == (3, 1)
    assert decoded.tolist() == [[1], [2], [3]]


def test_nested_data_decodes_to_declared_shape() -> None:
    request_input = RequestInput(name="a", shape=[2, 2], datatype="FP32", data=[[1, 2], [3, 4]])
    decoded = NumpyCodec.decode_input(request_input)
    assert decoded.dtype == np.float32
    assert decoded.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_nan_stays_nan_in_data_and_null_decodes_to_nan() -> None:
    output = NumpyCodec.encode_output("y", np.array([[1.0, np.nan]]))
    assert isinstance(output.data, list)
    assert output.data[0] == 1.0 and math.isnan(output.data[1])
    request_input = RequestInput(name="a", shape=[1, 2], datatype="FP64", data=[1.0, None])
    decoded = NumpyCodec.decode_input(request_input)
    assert decoded[0, 0] == 1.0 and np.isnan(decoded[0, 1])


def test_string_array_encodes_as_bytes() -> None:
    output = NumpyCodec.encode_output("s", np.array(["a", "é"]))
    assert output.datatype is Datatype.BYTES
    assert output.data == ["a", "é"]
    assert NumpyCodec.decode_output(output).reshape(-1).tolist() == [b"a", "é".encode()]


def test_bad_element_count_names_input() -> None:
    request_input = RequestInput(name="feat", shape=[2, 2], datatype="FP32", data=[1, 2, 3])
    with pytest.raises(InvalidRequest, match="feat"):
        NumpyCodec.decode_input(request_input)


def test_can_encode() -> None:
    assert NumpyCodec.can_encode(np.zeros(1))
    assert not NumpyCodec.can_encode([1.0])


def test_request_codec_round_trip() -> None:
    array = np.arange(6, dtype=np.int16).reshape(2, 3)
    request = NumpyRequestCodec.encode_request(array)
    assert request.parameters is not None and request.parameters.content_type == "np"
    assert [i.name for i in request.inputs] == ["input-1"]
    np.testing.assert_array_equal(NumpyRequestCodec.decode_request(request), array)
    response = NumpyRequestCodec.encode_response("m", array, model_version="2")
    assert (response.model_name, response.model_version) == ("m", "2")
    assert response.outputs[0].name == "output-1"
    np.testing.assert_array_equal(NumpyRequestCodec.decode_response(response), array)


def test_request_codec_needs_exactly_one_input() -> None:
    tensor = {"shape": [1], "datatype": "FP32", "data": [1]}
    request = InferenceRequest(inputs=[{"name": "a", **tensor}, {"name": "b", **tensor}])
    with pytest.raises(InvalidRequest, match=r"exactly one input.*'a', 'b'"):
        NumpyRequestCodec.decode_request(request)
    with pytest.raises(InvalidRequest, match="exactly one output"):
        NumpyRequestCodec.decode_response(InferenceResponse(model_name="m", outputs=[]))
