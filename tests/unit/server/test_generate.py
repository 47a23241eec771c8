"""The generate extension's JSON ⇄ tensors convention (``server.generate``)."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from mlpack.errors import InvalidRequest
from mlpack.server.generate import generate_body, generate_request
from mlpack.types import Datatype, InferenceResponse, MetadataModelResponse


def _body(payload: object) -> bytes:
    return orjson.dumps(payload)


def test_fields_become_tensors_and_parameters_request_parameters() -> None:
    request = generate_request(
        _body(
            {
                "id": "g",
                "text_input": "hello",
                "max_tokens": 5,
                "temperature": 0.5,
                "stop": ["a", "b"],
                "greedy": True,
                "parameters": {"top_k": 3},
            }
        ),
        None,
    )
    assert request.id == "g"
    assert request.parameters is not None and request.parameters.model_extra == {"top_k": 3}
    tensors = {t.name: (t.datatype, t.shape, t.data) for t in request.inputs}
    assert tensors == {
        "text_input": (Datatype.BYTES, [1], ["hello"]),
        "max_tokens": (Datatype.INT64, [1], [5]),
        "temperature": (Datatype.FP64, [1], [0.5]),
        "stop": (Datatype.BYTES, [2], ["a", "b"]),
        "greedy": (Datatype.BOOL, [1], [True]),
    }


def test_a_declared_numeric_datatype_wins() -> None:
    metadata = MetadataModelResponse(
        name="m",
        platform="",
        inputs=[{"name": "temperature", "datatype": "FP32", "shape": [1]}],
        outputs=[],
    )
    request = generate_request(_body({"temperature": 1}), metadata)
    assert request.inputs[0].datatype is Datatype.FP32


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "request body is empty"),
        (b"[1]", "must be a JSON object"),
        (b"{", "not valid JSON"),
        (_body({"parameters": {}}), "at least one input field"),
        (_body({"text_input": {"a": 1}}), "field 'text_input': expected a string"),
        (_body({"x": []}), "empty list"),
        (_body({"x": ["a", 1]}), "mixes"),
        (_body({"x": "a", "parameters": 3}), "'parameters' must be a JSON object"),
        (_body({"x": "a", "id": 3}), "'id' must be a string"),
    ],
)
def test_bad_requests_say_what_is_wrong(payload: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        generate_request(payload, None)


def test_outputs_become_fields() -> None:
    response = InferenceResponse(
        model_name="m",
        model_version="1",
        id="g",
        outputs=[
            {"name": "text_output", "shape": [1], "datatype": "BYTES", "data": [b"hi"]},
            {"name": "logprobs", "shape": [2], "datatype": "FP32", "data": np.array([0.5, 0.25])},
            {"name": "grid", "shape": [2, 1], "datatype": "INT64", "data": [[1], [2]]},
        ],
    )
    assert generate_body(response) == {
        "model_name": "m",
        "model_version": "1",
        "id": "g",
        "text_output": "hi",
        "logprobs": [0.5, 0.25],
        "grid": [1, 2],
    }
