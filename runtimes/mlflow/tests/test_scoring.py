"""MLflow's /invocations formats → inference requests, and answers → {"predictions": ...}."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from mlpack_mlflow import MLflowModel
from mlpack_mlflow.scoring import Invocations

from mlpack.errors import InvalidRequest
from mlpack.types import InferenceResponse, MetadataModelResponse

COLUMNS = MetadataModelResponse.model_validate(
    {
        "name": "m",
        "platform": "",
        "inputs": [
            {"name": "a", "datatype": "FP64", "shape": [-1]},
            {"name": "b", "datatype": "INT64", "shape": [-1]},
            {"name": "name", "datatype": "BYTES", "shape": [-1]},
        ],
        "parameters": {"content_type": "pd"},
    }
)
TENSOR = MetadataModelResponse.model_validate(
    {
        "name": "t",
        "platform": "",
        "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, 3]}],
        "parameters": {"content_type": "np"},
    }
)
TWO_TENSORS = MetadataModelResponse.model_validate(
    {
        "name": "t2",
        "platform": "",
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [-1, 2]},
            {"name": "y", "datatype": "FP32", "shape": [-1, 2]},
        ],
        "parameters": {"content_type": "dict"},
    }
)
NO_SIGNATURE = MetadataModelResponse(name="n", platform="")
ROUTE = Invocations()


def _request(body: Any, metadata: MetadataModelResponse, media_type: str = "application/json"):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return ROUTE.to_request(raw, media_type, metadata)


def _columns(request: Any) -> dict[str, tuple[str, list[Any]]]:
    return {t.name: (t.datatype.value, list(t.data)) for t in request.inputs}


def test_the_runtime_declares_the_route() -> None:
    assert [type(r) for r in MLflowModel.rest_routes] == [Invocations]
    assert Invocations.path == "/invocations"
    assert Invocations.media_types == {"application/json", "text/csv"}


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": {"columns": ["a", "b", "name"], "data": [[1.5, 2, "x"], [2, 3, "y"]]}},
        {"dataframe_records": [{"a": 1.5, "b": 2, "name": "x"}, {"a": 2, "b": 3, "name": "y"}]},
        {"instances": [{"a": 1.5, "b": 2, "name": "x"}, {"a": 2, "b": 3, "name": "y"}]},
        {"inputs": {"a": [1.5, 2], "b": [2, 3], "name": ["x", "y"]}},
        {"inputs": [[1.5, 2, "x"], [2, 3, "y"]]},
    ],
)
def test_every_json_format_becomes_the_same_columns(body: dict[str, Any]) -> None:
    request = _request(body, COLUMNS)
    assert request.parameters is not None and request.parameters.content_type == "pd"
    assert _columns(request) == {
        "a": ("FP64", [1.5, 2]),
        "b": ("INT64", [2, 3]),
        "name": ("BYTES", ["x", "y"]),
    }
    assert all(t.shape == [2] for t in request.inputs)


def test_csv_is_typed_by_the_signature_or_guessed() -> None:
    body = b"a,b,name\n1.5,2,x\n,3,y\n"
    columns = _columns(_request(body, COLUMNS, "text/csv"))
    assert (
        columns["a"][0] == "FP64" and columns["a"][1][0] == 1.5 and math.isnan(columns["a"][1][1])
    )
    assert columns["b"] == ("INT64", [2, 3]) and columns["name"] == ("BYTES", ["x", "y"])
    guessed = _columns(_request(b"i,f,s,t\n1,1.5,x,true\n2,2,y,false\n", NO_SIGNATURE, "text/csv"))
    assert guessed == {
        "i": ("INT64", [1, 2]),
        "f": ("FP64", [1.5, 2.0]),
        "s": ("BYTES", ["x", "y"]),
        "t": ("BOOL", [True, False]),
    }


def test_tensors_keep_their_shape_and_params_travel() -> None:
    request = _request({"inputs": [[1, 2, 3], [4, 5, 6]], "params": {"scale": 2}}, TENSOR)
    [tensor] = request.inputs
    assert (tensor.name, tensor.datatype.value, tensor.shape, tensor.data) == (
        "input-0",
        "FP32",
        [2, 3],
        [1, 2, 3, 4, 5, 6],
    )
    assert request.parameters is not None and request.parameters.content_type == "np"
    assert request.parameters.scale == 2
    named = _request({"inputs": {"x": [[1, 2]], "y": [[3, 4]]}}, TWO_TENSORS)
    assert [(t.name, t.shape) for t in named.inputs] == [("x", [1, 2]), ("y", [1, 2])]
    assert named.parameters is not None and named.parameters.content_type == "dict"


@pytest.mark.parametrize(
    ("body", "metadata", "message"),
    [
        (b"", COLUMNS, "body is empty"),
        (b"{nope", COLUMNS, "not valid JSON"),
        (b"[1, 2]", COLUMNS, "must be a JSON object"),
        ({"data": [[1]]}, COLUMNS, "exactly one of"),
        ({"inputs": [[1]], "instances": [[1]]}, COLUMNS, "exactly one of"),
        ({"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}, COLUMNS, "row 0 must be"),
        ({"dataframe_split": [1]}, COLUMNS, "'dataframe_split' must be an object"),
        ({"dataframe_records": [1, 2]}, COLUMNS, "list of objects"),
        ({"inputs": [[1, 2]]}, COLUMNS, r"takes columns \['a', 'b', 'name'\]"),
        ({"inputs": [[1, 2, 3], [4, 5]]}, TENSOR, "ragged"),
        ({"inputs": [[1, 2]]}, TWO_TENSORS, "takes 2 tensors"),
        ({"inputs": [], "params": {}}, TENSOR, "non-empty list"),
        ({"inputs": [[1, 2, 3]], "params": [1]}, TENSOR, "'params' must be an object"),
        ({"inputs": [[1, 2, 3]], "params": {"content_type": "x"}}, TENSOR, "may not set"),
        ({"dataframe_records": [{"a": 1}, {"a": "x"}]}, NO_SIGNATURE, "mixes values"),
        ({"dataframe_records": [{"b": 1}, {"a": 2}]}, COLUMNS, "column 'b' has missing values"),
        (b"a,b\n1\n", COLUMNS, "CSV line 2 has 1 values"),
        (b"a,b,name\nx,1,y\n", COLUMNS, "CSV column 'a'"),
        (b"\xff\xfe", COLUMNS, "not UTF-8"),
    ],
)
def test_what_cannot_be_scored_is_a_clear_400(
    body: Any, metadata: MetadataModelResponse, message: str
) -> None:
    csv = isinstance(body, bytes) and body[:1] not in (b"", b"{", b"[")
    media_type = "text/csv" if csv else "application/json"
    with pytest.raises(InvalidRequest, match=message):
        _request(body, metadata, media_type)


def test_answers_are_mlflow_shaped() -> None:
    frame = InferenceResponse.model_validate(
        {
            "model_name": "m",
            "parameters": {"content_type": "pd"},
            "outputs": [
                {"name": "total", "datatype": "FP64", "shape": [2], "data": [3.5, 5.0]},
                {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["X", "Y"]},
            ],
        }
    )
    assert ROUTE.to_answer(frame, COLUMNS) == {
        "predictions": [{"total": 3.5, "label": "X"}, {"total": 5.0, "label": "Y"}]
    }
    single = InferenceResponse.model_validate(
        {
            "model_name": "m",
            "outputs": [{"name": "o", "datatype": "INT64", "shape": [2, 2], "data": [1, 2, 3, 4]}],
        }
    )
    assert ROUTE.to_answer(single, TENSOR) == {"predictions": [[1, 2], [3, 4]]}
    several = InferenceResponse.model_validate(
        {
            "model_name": "m",
            "outputs": [
                {"name": "p", "datatype": "FP32", "shape": [1, 2], "data": [8.0, 15.0]},
                {"name": "q", "datatype": "INT64", "shape": [1], "data": [1]},
            ],
        }
    )
    assert ROUTE.to_answer(several, TWO_TENSORS) == {"predictions": {"p": [[8.0, 15.0]], "q": [1]}}
