"""Request bodies for a benchmark: generated from a model's metadata, or read from a JSONL file.

A request is a V2 JSON request dict; ``encode`` turns it into the bytes (and headers) one
transport sends: ``rest`` (JSON), ``rest-binary`` (binary tensor extension) or ``grpc``
(serialized ``ModelInferRequest``). The first dimension of every input is the batch (rows).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .errors import BenchError
from .loadgen import Body

Transport = Literal["rest", "rest-binary", "grpc"]
TRANSPORTS: tuple[str, ...] = ("rest", "rest-binary", "grpc")
DISTINCT_BODIES = 8  # distinct generated bodies, cycled (defeats trivial caching)
MAX_ELEMENTS = 16 * 1024 * 1024  # elements per generated tensor: a bound, not a target


class PayloadError(BenchError):
    """The request data cannot be made (bad shape flag, missing metadata, bad JSONL line)."""


@dataclass(frozen=True)
class TensorSpec:
    """One input to generate: name, datatype and shape (``-1`` first dimension: the rows)."""

    name: str
    datatype: str
    shape: tuple[int, ...]


def parse_shapes(values: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """``NAME=D1,D2,...`` flags → shapes (``-1`` allowed for the batch dimension)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for value in values:
        name, sep, dims = value.partition("=")
        try:
            shape = tuple(int(d) for d in dims.replace("x", ",").split(",") if d.strip())
        except ValueError:
            shape = ()
        if not sep or not name or not shape:
            raise PayloadError(f"--shape {value!r}: expected NAME=D1,D2,... (e.g. predict=-1,4)")
        shapes[name] = shape
    return shapes


def specs_from_metadata(
    metadata: dict[str, Any], shapes: dict[str, tuple[int, ...]] | None = None
) -> list[TensorSpec]:
    """The inputs a model declares in its metadata, with ``--shape`` overrides applied."""
    shapes = dict(shapes or {})
    inputs = metadata.get("inputs") or []
    name = metadata.get("name", "the model")
    if not inputs:
        raise PayloadError(
            f"model {name!r} declares no inputs in its metadata: give --data FILE.jsonl "
            "(one V2 request per line), or declare 'inputs' in its model-settings.json"
        )
    specs = []
    for tensor in inputs:
        shape = tuple(shapes.pop(tensor["name"], ()) or tensor.get("shape") or (-1,))
        if any(d < 0 for d in shape[1:]) or any(d == 0 for d in shape):
            raise PayloadError(
                f"input {tensor['name']!r} of {name!r} has shape {list(shape)}: only the first "
                f"(batch) dimension may be -1; give --shape {tensor['name']}=-1,N,..."
            )
        specs.append(TensorSpec(tensor["name"], tensor["datatype"], shape))
    if shapes:
        raise PayloadError(f"--shape names inputs {sorted(shapes)} that {name!r} does not declare")
    return specs


def _values(datatype: str, count: int, rng: random.Random) -> list[Any]:
    if datatype.startswith("FP"):
        return [round(rng.random() * 10, 3) for _ in range(count)]
    if datatype.startswith(("INT", "UINT")):
        return [rng.randrange(0, 10) for _ in range(count)]
    if datatype == "BOOL":
        return [rng.random() < 0.5 for _ in range(count)]
    if datatype == "BYTES":
        letters = "abcdefghijklmnopqrstuvwxyz"
        return ["".join(rng.choice(letters) for _ in range(8)) for _ in range(count)]
    raise PayloadError(f"cannot generate data of datatype {datatype}")


def generate_requests(
    specs: Sequence[TensorSpec], rows: int, count: int = DISTINCT_BODIES, seed: int = 0
) -> list[dict[str, Any]]:
    """``count`` distinct V2 request dicts with ``rows`` rows each (first dimension)."""
    if rows < 1:
        raise PayloadError("rows per request must be >= 1")
    rng = random.Random(seed)
    requests = []
    for _ in range(count):
        inputs = []
        for spec in specs:
            shape = [rows if i == 0 and d == -1 else d for i, d in enumerate(spec.shape)]
            size = 1
            for d in shape:
                size *= d
            if size > MAX_ELEMENTS:
                raise PayloadError(f"input {spec.name!r}: {size} elements is over {MAX_ELEMENTS}")
            data = _values(spec.datatype, size, rng)
            inputs.append(
                {"name": spec.name, "shape": shape, "datatype": spec.datatype, "data": data}
            )
        requests.append({"inputs": inputs})
    return requests


def read_jsonl(path: Path, limit: int = 10_000) -> list[dict[str, Any]]:
    """V2 request dicts from a JSONL file (one request per line; at most ``limit``)."""
    requests: list[dict[str, Any]] = []
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise PayloadError(f"cannot read {path}: {error.strerror or error}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except json.JSONDecodeError as error:
            raise PayloadError(f"{path}:{number}: not JSON ({error.msg})") from None
        if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
            raise PayloadError(f"{path}:{number}: expected a V2 request with an 'inputs' list")
        requests.append(request)
        if len(requests) >= limit:
            break
    if not requests:
        raise PayloadError(f"{path} holds no requests")
    return requests


def rows_of(request: dict[str, Any]) -> int:
    """Rows a request carries: the first dimension of its first input."""
    inputs = request.get("inputs") or [{}]
    shape = inputs[0].get("shape") or [1]
    return int(shape[0]) if shape else 1


def encode(request: dict[str, Any], transport: str, model: str, version: str | None = None) -> Body:
    """The bytes (and headers) ``transport`` sends for ``request``."""
    rows = rows_of(request)
    if transport == "rest":
        return Body(json.dumps(request, separators=(",", ":")).encode(), rows)
    if transport == "rest-binary":
        from ..client.binary import HEADER_LENGTH, encode_binary_request

        body, header_length = encode_binary_request(request)
        return Body(body, rows, ((HEADER_LENGTH, str(header_length)),))
    if transport == "grpc":
        from ..proto.convert import model_infer_request_from_types
        from ..types import InferenceRequest

        typed = InferenceRequest.model_validate(request)
        message = model_infer_request_from_types(typed, model, version, raw=True)
        return Body(message.SerializeToString(), rows)
    raise PayloadError(f"unknown transport {transport!r}; choose from {', '.join(TRANSPORTS)}")
