from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlpack.codecs.tensors import decode_tensor, tensor_as_ndarray, to_datatype, validate_inputs
from mlpack.errors import InvalidRequest
from mlpack.types import Datatype, RequestInput


def tensor(
    datatype: str, data: object, shape: list[int] | None = None, name: str = "x"
) -> RequestInput:
    if shape is None:
        shape = [len(data)] if isinstance(data, list) else [1]
    return RequestInput(name=name, shape=shape, datatype=datatype, data=data)


@pytest.mark.parametrize(
    ("datatype", "data", "message"),
    [
        ("INT32", [1.5], "1.5 is not an integer"),
        ("INT8", [300], "300 is out of range [-128, 127]"),
        ("UINT8", [-1], "-1 is out of range"),
        ("BOOL", ["false"], "booleans"),
        ("BOOL", [0], "booleans"),
        ("INT64", [True], "integers"),
        ("FP32", ["1.0"], "numbers"),
        ("FP16", [1e6], "out of range"),
        ("BYTES", [1], "strings"),
        ("UINT64", [2**64], "out of range"),
        ("INT64", [-(2**63) - 1, 0], "out of range"),
        ("FP32", [True, 1.5], "mix of numbers and booleans"),
        ("INT32", [2, False], "mix of numbers and booleans"),
        ("FP64", [[1.0], [True]], "mix of numbers and booleans"),
    ],
)
def test_values_that_do_not_fit_are_rejected_naming_the_input(
    datatype: str, data: list[object], message: str
) -> None:
    with pytest.raises(InvalidRequest) as error:
        decode_tensor(tensor(datatype, data, name="feature"))
    assert message in error.value.message and "'feature'" in error.value.message


def test_element_count_must_match_shape() -> None:
    with pytest.raises(InvalidRequest, match="6 elements but data has 4"):
        decode_tensor(tensor("FP32", [1, 2, 3, 4], shape=[2, 3]))


def test_negative_dimension_rejected() -> None:
    with pytest.raises(InvalidRequest, match="negative"):
        decode_tensor(tensor("FP32", [1], shape=[-1]))


def test_nested_and_flat_data_are_equivalent() -> None:
    nested = tensor_as_ndarray(tensor("INT16", [[1, 2, 3], [4, 5, 6]], shape=[2, 3]))
    flat = tensor_as_ndarray(tensor("INT16", [1, 2, 3, 4, 5, 6], shape=[2, 3]))
    assert nested.dtype == np.int16 and np.array_equal(nested, flat) and nested.shape == (2, 3)


def test_null_is_nan_for_floats() -> None:
    values = decode_tensor(tensor("FP64", [1.0, None]))
    assert values[0] == 1.0 and math.isnan(values[1])


def test_integral_floats_are_accepted_for_integer_types() -> None:
    assert decode_tensor(tensor("INT32", [1.0, 2.0])).tolist() == [1, 2]


def test_big_unsigned_values_stay_exact_next_to_small_ones() -> None:
    values = decode_tensor(tensor("UINT64", [[0, 1], [2, 2**64 - 1]], shape=[2, 2]))
    assert values.dtype == np.uint64 and values.tolist() == [0, 1, 2, 2**64 - 1]


def test_nested_bytes_decode_to_every_string() -> None:
    assert decode_tensor(tensor("BYTES", [["a", "b"], ["c", ""]], shape=[2, 2])) == [
        "a",
        "b",
        "c",
        "",
    ]


def test_decoded_value_is_cached() -> None:
    t = tensor("FP32", [1, 2])
    assert decode_tensor(t) is decode_tensor(t)


def test_duplicate_names_rejected() -> None:
    with pytest.raises(InvalidRequest, match="more than once"):
        validate_inputs([tensor("FP32", [1]), tensor("FP32", [2])])


@pytest.mark.parametrize("datatype", [d for d in Datatype if d is not Datatype.BYTES])
def test_dtype_round_trip(datatype: Datatype) -> None:
    from mlpack.codecs.tensors import to_dtype

    assert to_datatype(to_dtype(datatype)) is datatype


@given(st.lists(st.integers(min_value=-(2**31), max_value=2**31 - 1), min_size=1, max_size=50))
def test_int32_values_round_trip_exactly(values: list[int]) -> None:
    assert decode_tensor(tensor("INT32", values)).tolist() == values


@given(st.lists(st.integers(min_value=-(2**40), max_value=2**40), min_size=1, max_size=20))
def test_int16_accepts_exactly_the_values_in_range(values: list[int]) -> None:
    fits = all(-(2**15) <= v < 2**15 for v in values)
    if fits:
        assert decode_tensor(tensor("INT16", values)).tolist() == values
    else:
        with pytest.raises(InvalidRequest, match="out of range"):
            decode_tensor(tensor("INT16", values))


def test_float32_overflow_is_rejected_and_infinity_kept() -> None:
    with pytest.raises(InvalidRequest, match=r"value 1e\+39 is out of range"):
        decode_tensor(tensor("FP32", [1.0, 1e39]))
    kept = decode_tensor(tensor("FP32", [1.0, math.inf, -math.inf]))
    assert kept.dtype == np.float32 and kept[1] == math.inf and kept[2] == -math.inf
