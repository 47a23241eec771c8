"""Turn pydantic validation errors about a request into one precise message."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError


def describe_validation_error(error: ValidationError, body: bytes) -> str:
    """A message naming the input (by name where possible) and the problem."""
    problems = []
    parsed: Any = None
    for item in error.errors(include_url=False):
        if item["type"] == "json_invalid":
            return (
                f"request body is not valid JSON: {item.get('ctx', {}).get('error', item['msg'])}"
            )
        location = list(item["loc"])
        where = ".".join(str(part) for part in location) or "body"
        if len(location) >= 2 and location[0] == "inputs" and isinstance(location[1], int):
            if parsed is None:
                parsed = _loads(body)
            name = _input_name(parsed, location[1])
            field = ".".join(str(part) for part in location[2:])
            where = f"input '{name}'" if name else f"inputs[{location[1]}]"
            if field:
                where += f" field '{field}'"
        problems.append(f"{where}: {item['msg']}")
    return "invalid inference request: " + "; ".join(problems[:5])


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}


def _input_name(parsed: Any, index: int) -> str | None:
    try:
        name = parsed["inputs"][index]["name"]
    except (KeyError, IndexError, TypeError):
        return None
    return name if isinstance(name, str) else None
