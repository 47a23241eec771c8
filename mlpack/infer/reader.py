"""Read a JSONL file of V2 inference requests lazily and vet each line."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ..errors import InvalidLine as InvalidLine  # defined in the error tree; re-exported
from ..types import Datatype

_DATATYPES = frozenset(d.value for d in Datatype)


@dataclass
class Line:
    """One input line: its 0-based position, the request (once parsed) and its id."""

    index: int
    request: dict[str, Any]
    id: str


def iter_lines(path: Path, start: int = 0) -> Iterator[tuple[int, bytes]]:
    """``(index, raw line)`` from ``start`` on, one line in memory at a time."""
    with open(path, "rb") as file:
        for index, raw in enumerate(file):
            if index >= start:
                yield index, raw


def count_lines(path: Path) -> int:
    """Lines in a file (a last line without a newline counts), in 1 MiB reads."""
    count = 0
    last = b"\n"
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


def parse_line(index: int, raw: bytes) -> Line:
    """Parse and check a line; the id is the request's own or ``line-N`` (1-based)."""
    generated = f"line-{index + 1}"
    text = raw.strip()
    if not text:
        raise InvalidLine("empty line", generated)
    try:
        request = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise InvalidLine(f"not valid JSON: {error}", generated) from None
    if not isinstance(request, dict):
        raise InvalidLine(
            f"expected a JSON object (an inference request), got {type(request).__name__}",
            generated,
        )
    given = request.get("id")
    request_id = str(given) if given not in (None, "") else generated
    request["id"] = request_id
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidLine("'inputs' must be a non-empty list", request_id)
    for position, tensor in enumerate(inputs):
        problem = _tensor_problem(tensor)
        if problem:
            name = tensor.get("name") if isinstance(tensor, dict) else None
            raise InvalidLine(
                f"inputs[{position}]{f' ({name!r})' if name else ''}: {problem}", request_id
            )
    return Line(index, request, request_id)


def _tensor_problem(tensor: Any) -> str | None:
    if not isinstance(tensor, dict):
        return "must be an object"
    if not isinstance(tensor.get("name"), str):
        return "'name' must be a string"
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        return "'shape' must be a list of non-negative integers"
    if tensor.get("datatype") not in _DATATYPES:
        return f"'datatype' must be one of {', '.join(sorted(_DATATYPES))}"
    if "data" not in tensor:
        return "'data' is missing"
    return None
