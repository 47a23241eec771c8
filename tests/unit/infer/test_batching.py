from __future__ import annotations

import pytest

from mlpack.infer.batching import SplitError, merge, merge_key, split


def req(rows: list[list[int]], rid: str = "a", **extra: object) -> dict[str, object]:
    return {
        "id": rid,
        "inputs": [{"name": "x", "shape": [len(rows), 2], "datatype": "INT64", "data": rows}],
        **extra,
    }


def test_merge_key_groups_compatible_requests() -> None:
    assert merge_key(req([[1, 2]], "a")) == merge_key(req([[3, 4], [5, 6]], "b"))
    assert merge_key(req([[1, 2]])) != merge_key(req([[1, 2]], parameters={"content_type": "np"}))
    scalar = {"inputs": [{"name": "x", "shape": [], "datatype": "INT64", "data": 1}]}
    assert merge_key(scalar) is None


def test_merge_then_split_round_trip() -> None:
    requests = [req([[1, 2]], "a"), req([[3, 4], [5, 6]], "b")]
    merged = merge(requests, "batch-1")
    assert merged["id"] == "batch-1"
    assert merged["inputs"][0]["shape"] == [3, 2] and merged["inputs"][0]["data"] == [
        1,
        2,
        3,
        4,
        5,
        6,
    ]
    response = {
        "model_name": "m",
        "id": "batch-1",
        "outputs": [{"name": "y", "shape": [3], "datatype": "INT64", "data": [10, 20, 30]}],
    }
    parts = split(response, [1, 2], ["a", "b"])
    assert parts == [
        {
            "model_name": "m",
            "id": "a",
            "outputs": [{"name": "y", "shape": [1], "datatype": "INT64", "data": [10]}],
        },
        {
            "model_name": "m",
            "id": "b",
            "outputs": [{"name": "y", "shape": [2], "datatype": "INT64", "data": [20, 30]}],
        },
    ]


def test_split_refuses_outputs_without_the_rows() -> None:
    response = {
        "model_name": "m",
        "outputs": [{"name": "y", "shape": [1], "datatype": "INT64", "data": [1]}],
    }
    with pytest.raises(SplitError, match="not 3 rows"):
        split(response, [1, 2], ["a", "b"])
