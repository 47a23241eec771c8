"""Merge/split: every caller gets back exactly its own rows, parameters and outputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlpack.codecs.tensors import tensor_as_ndarray, validate_inputs
from mlpack.engine.merging import batch_key, count_rows, merge_requests, split_response
from mlpack.errors import ModelError
from mlpack.types import InferenceRequest, InferenceResponse, RequestOutput, ResponseOutput

DATATYPES = ["FP32", "FP64", "INT64", "INT8", "UINT16", "BOOL", "BYTES"]


def _values(datatype: str, count: int, draw: Any) -> list[Any]:
    if datatype == "BOOL":
        return draw(st.lists(st.booleans(), min_size=count, max_size=count))
    if datatype == "BYTES":
        return draw(st.lists(st.text(max_size=4), min_size=count, max_size=count))
    if datatype.startswith("FP"):
        return draw(st.lists(st.integers(-1000, 1000).map(float), min_size=count, max_size=count))
    low = 0 if datatype.startswith("U") else -100
    return draw(st.lists(st.integers(low, 100), min_size=count, max_size=count))


@st.composite
def batch(draw: Any) -> tuple[list[InferenceRequest], list[dict[str, Any]]]:
    """Compatible requests: same inputs (names, datatypes, trailing dims), any row counts."""
    n_inputs = draw(st.integers(1, 3))
    specs = [
        (f"in{i}", draw(st.sampled_from(DATATYPES)), draw(st.lists(st.integers(1, 3), max_size=2)))
        for i in range(n_inputs)
    ]
    outputs = draw(
        st.one_of(st.none(), st.lists(st.sampled_from(["a", "b"]), unique=True, min_size=1))
    )
    requests = []
    for index in range(draw(st.integers(1, 5))):
        rows = draw(st.integers(0, 4))
        inputs = []
        for name, datatype, trailing in specs:
            shape = [rows, *trailing]
            inputs.append(
                {
                    "name": name,
                    "datatype": datatype,
                    "shape": shape,
                    "data": _values(datatype, int(np.prod(shape)), draw),
                }
            )
        parameters = draw(st.one_of(st.none(), st.fixed_dictionaries({"tag": st.integers(0, 9)})))
        request = InferenceRequest.model_validate(
            {
                "id": f"r{index}",
                "inputs": inputs,
                "parameters": parameters,
                "outputs": None if outputs is None else [{"name": o} for o in outputs],
            }
        )
        validate_inputs(request.inputs)
        requests.append(request)
    return requests, [dict(zip(["name", "datatype", "trailing"], s, strict=True)) for s in specs]


def _echo(request: InferenceRequest) -> InferenceResponse:
    """A batched model: echoes each input and returns per-request parameters as given."""
    outputs = []
    for request_input in request.inputs:
        array = tensor_as_ndarray(request_input)
        outputs.append(
            ResponseOutput(
                name=request_input.name,
                shape=list(array.shape),
                datatype=request_input.datatype,
                data=array.reshape(-1).tolist()
                if request_input.datatype.value == "BYTES"
                else array.reshape(-1),
            )
        )
    parameters = None
    if request.parameters is not None:
        parameters = request.parameters.model_dump(exclude_none=True)
    return InferenceResponse(model_name="m", outputs=outputs, parameters=parameters)


@settings(max_examples=150, deadline=None)
@given(batch())
def test_every_caller_gets_exactly_its_rows(case: tuple[list[InferenceRequest], Any]) -> None:
    requests, _ = case
    assert len({batch_key(r) for r in requests}) == 1
    rows = [count_rows(r) for r in requests]
    assert all(r is not None for r in rows)
    merged = merge_requests(requests)
    assert count_rows(merged) == sum(rows)  # type: ignore[arg-type]
    assert merged.outputs == requests[0].outputs
    responses = split_response(_echo(merged), rows, "m")  # type: ignore[arg-type]
    assert len(responses) == len(requests)
    for request, response in zip(requests, responses, strict=True):
        for request_input, output in zip(request.inputs, response.outputs, strict=True):
            assert output.name == request_input.name and output.shape == request_input.shape
            expected = tensor_as_ndarray(request_input)
            got = tensor_as_ndarray(output)
            assert np.array_equal(expected, got)
        tag = request.parameters.model_dump().get("tag") if request.parameters else None
        got_tag = response.parameters.model_dump().get("tag") if response.parameters else None
        assert got_tag == tag


def _request(
    shape: list[int], datatype: str = "FP32", content_type: str | None = None
) -> InferenceRequest:
    parameters = {"content_type": content_type} if content_type else None
    request = InferenceRequest.model_validate(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": datatype,
                    "shape": shape,
                    "parameters": parameters,
                    "data": [1] * int(np.prod(shape)),
                }
            ]
        }
    )
    validate_inputs(request.inputs)
    return request


def test_only_compatible_requests_share_a_key() -> None:
    base = batch_key(_request([1, 3]))
    assert batch_key(_request([5, 3])) == base
    assert batch_key(_request([1, 4])) != base
    assert batch_key(_request([1, 3], "FP64")) != base
    assert batch_key(_request([1, 3], content_type="np")) != base
    with_outputs = _request([1, 3])
    with_outputs.outputs = [RequestOutput(name="y")]
    assert batch_key(with_outputs) != base
    assert count_rows(_request([])) is None


def test_wrong_row_count_fails_the_whole_batch() -> None:
    response = InferenceResponse(
        model_name="m",
        outputs=[ResponseOutput(name="y", shape=[2], datatype="FP32", data=[1.0, 2.0])],
    )
    with pytest.raises(ModelError, match="batch of 3 rows"):
        split_response(response, [1, 2], "m")
