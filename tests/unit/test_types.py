"""mlpack.types.trusted and decoded_data: fast paths that must behave like pydantic's own."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from mlpack.types import (
    Datatype,
    InferenceRequest,
    InferenceResponse,
    Parameters,
    RequestInput,
    RequestOutput,
    ResponseOutput,
    decoded_data,
    trusted,
)

CASES = [
    (RequestInput, {"name": "x", "shape": [1, 2], "datatype": Datatype.FP32, "data": [1.0, 2.0]}),
    (RequestOutput, {"name": "y"}),
    (
        ResponseOutput,
        {
            "name": "y",
            "shape": [1],
            "datatype": Datatype.INT64,
            "data": [3],
            "parameters": Parameters(content_type="np"),
        },
    ),
    (InferenceResponse, {"model_name": "m", "outputs": []}),
    (InferenceRequest, {"id": "r", "inputs": []}),
    (Parameters, {"headers": {"user-agent": "grpc"}}),
]


@pytest.mark.parametrize(("model", "values"), CASES)
def test_trusted_builds_what_model_construct_builds(model: type, values: dict) -> None:
    fast, slow = trusted(model, **values), model.model_construct(**values)
    assert fast == slow
    assert fast.model_fields_set == slow.model_fields_set == set(values)
    assert fast.model_dump() == slow.model_dump()
    assert repr(fast) == repr(slow)
    assert pickle.loads(pickle.dumps(fast)) == fast
    assert fast.model_copy(update={}) == fast


def test_trusted_refuses_missing_and_unknown_fields() -> None:
    with pytest.raises(TypeError, match="missing \\['inputs'\\]"):
        trusted(InferenceRequest, id="r")
    with pytest.raises(TypeError, match="unknown \\['bogus'\\]"):
        trusted(InferenceRequest, inputs=[], bogus=1)
    with pytest.raises(TypeError, match="unknown \\['timeout'\\]"):
        trusted(Parameters, timeout=5)  # extra keys need validation: model_validate


def test_trusted_parameters_keep_their_own_extra_keys() -> None:
    first, second = trusted(Parameters, headers={}), trusted(Parameters, headers={})
    assert (
        first.__pydantic_extra__ == {} and first.__pydantic_extra__ is not second.__pydantic_extra__
    )
    first.timeout = 5  # as on a validated instance: an extra key
    assert first.model_dump(exclude_none=True) == {"headers": {}, "timeout": 5}
    assert second.model_dump(exclude_none=True) == {"headers": {}}


def test_each_trusted_input_has_its_own_decoded_cache() -> None:
    first = trusted(RequestInput, name="a", shape=[1], datatype=Datatype.FP64, data=[1.0])
    second = trusted(RequestInput, name="b", shape=[1], datatype=Datatype.FP64, data=[2.0])
    assert decoded_data(first) is None and first._decoded is None
    array = np.array([1.0])
    first._decoded = array
    assert decoded_data(first) is array and first._decoded is array
    assert decoded_data(second) is None


def test_decoded_data_reads_validated_inputs_too() -> None:
    validated = RequestInput(name="a", shape=[1], datatype="FP64", data=[1.0])
    assert decoded_data(validated) is None
    validated._decoded = "cached"
    assert decoded_data(validated) == "cached"
