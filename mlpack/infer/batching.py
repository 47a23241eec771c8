"""Micro-batching: merge requests along the first dimension and split the response back."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import orjson

from ..codecs.tensors import flatten
from ..errors import SplitError as SplitError  # defined in the error tree; re-exported


def merge_key(request: dict[str, Any]) -> Hashable | None:
    """Requests with equal keys can be merged; None if this one cannot be merged at all."""
    inputs = request["inputs"]
    rows = {tuple(t["shape"][:1]) for t in inputs}
    if len(rows) != 1 or not next(iter(rows)):
        return None  # scalars, or inputs that disagree on the number of rows
    tensors = tuple(
        (
            t["name"],
            t["datatype"],
            tuple(t["shape"][1:]),
            orjson.dumps(t.get("parameters"), option=orjson.OPT_SORT_KEYS),
        )
        for t in inputs
    )
    rest = {k: v for k, v in request.items() if k not in ("id", "inputs")}
    return tensors, orjson.dumps(rest, option=orjson.OPT_SORT_KEYS)


def rows_of(request: dict[str, Any]) -> int:
    return int(request["inputs"][0]["shape"][0])


def merge(requests: Sequence[dict[str, Any]], request_id: str) -> dict[str, Any]:
    """One request holding every row of ``requests`` (which share a ``merge_key``)."""
    first = requests[0]
    merged = {k: v for k, v in first.items() if k != "inputs"}
    merged["id"] = request_id
    total = sum(rows_of(r) for r in requests)
    inputs = []
    for position, tensor in enumerate(first["inputs"]):
        data: list[Any] = []
        for request in requests:
            part = request["inputs"][position]["data"]
            data.extend(flatten(part) if isinstance(part, list) else [part])
        inputs.append({**tensor, "shape": [total, *tensor["shape"][1:]], "data": data})
    merged["inputs"] = inputs
    return merged


def split(
    response: dict[str, Any], rows: Sequence[int], ids: Sequence[str]
) -> list[dict[str, Any]]:
    """Cut a merged response into one response per request (``rows[i]`` rows each)."""
    total = sum(rows)
    parts: list[dict[str, Any]] = [
        {**{k: v for k, v in response.items() if k != "outputs"}, "id": request_id, "outputs": []}
        for request_id in ids
    ]
    for output in response.get("outputs", []):
        shape = output.get("shape") or []
        if not shape or shape[0] != total:
            raise SplitError(f"output '{output.get('name')}' has shape {shape}, not {total} rows")
        per_row = math.prod(shape[1:])
        data = output.get("data")
        flat = flatten(data) if isinstance(data, list) else [data]
        if len(flat) != total * per_row:
            raise SplitError(
                f"output '{output.get('name')}' has {len(flat)} elements for shape {shape}"
            )
        start = 0
        for part, count in zip(parts, rows, strict=True):
            end = start + count * per_row
            part["outputs"].append(
                {**output, "shape": [count, *shape[1:]], "data": flat[start:end]}
            )
            start = end
    return parts
