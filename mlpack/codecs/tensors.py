"""Strict conversion of protocol tensors to numpy and back.

This is the one place where tensor data is validated: datatype, shape, element
count and whether each value fits the datatype. Everything above it (codecs,
transports, models) can rely on a ``RequestInput`` that passed ``decode_tensor``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InvalidRequest
from ..types import Datatype, RequestInput, ResponseOutput, decoded_data

DATATYPE_TO_DTYPE: dict[Datatype, np.dtype[Any]] = {
    Datatype.BOOL: np.dtype(np.bool_),
    Datatype.UINT8: np.dtype(np.uint8),
    Datatype.UINT16: np.dtype(np.uint16),
    Datatype.UINT32: np.dtype(np.uint32),
    Datatype.UINT64: np.dtype(np.uint64),
    Datatype.INT8: np.dtype(np.int8),
    Datatype.INT16: np.dtype(np.int16),
    Datatype.INT32: np.dtype(np.int32),
    Datatype.INT64: np.dtype(np.int64),
    Datatype.FP16: np.dtype(np.float16),
    Datatype.FP32: np.dtype(np.float32),
    Datatype.FP64: np.dtype(np.float64),
    Datatype.BYTES: np.dtype(object),
}

_KIND_TO_DATATYPE = {"S": Datatype.BYTES, "U": Datatype.BYTES, "O": Datatype.BYTES}


def to_dtype(datatype: Datatype | str) -> np.dtype[Any]:
    """The numpy dtype that holds a protocol datatype (BYTES → object)."""
    return DATATYPE_TO_DTYPE[Datatype(datatype)]


def to_datatype(dtype: np.dtype[Any]) -> Datatype:
    """The protocol datatype for a numpy dtype."""
    dtype = np.dtype(dtype)
    if dtype.kind in _KIND_TO_DATATYPE:
        return Datatype.BYTES
    for datatype, candidate in DATATYPE_TO_DTYPE.items():
        if candidate == dtype:
            return datatype
    raise InvalidRequest(f"numpy dtype '{dtype}' has no Open Inference Protocol datatype")


def element_count(shape: Sequence[int]) -> int:
    return math.prod(shape)


def check_shape(name: str, shape: Sequence[int]) -> None:
    for dim in shape:
        if dim < 0:
            raise InvalidRequest(f"input '{name}': shape {list(shape)} has a negative dimension")


def flatten(data: Any) -> list[Any]:
    """Flatten nested lists (not strings or bytes) into one list."""
    if not isinstance(data, list):
        return [data]
    if not any(isinstance(item, list) for item in data):
        return data
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _fail(name: str, datatype: Datatype, problem: str) -> InvalidRequest:
    return InvalidRequest(f"input '{name}' ({datatype.value}): {problem}")


def _numeric_array(
    name: str, datatype: Datatype, data: Any, count: int, no_booleans: bool = False
) -> np.ndarray:
    """Convert JSON-decoded numbers (or an array) to a flat array of ``datatype``.

    Steps: read the values into numpy, check the element count, then convert with the
    datatype family's own rules (booleans, floats, integers), rejecting lossy values.
    """
    from_json = not isinstance(data, np.ndarray)
    if from_json and not isinstance(data, list):
        data = [data]
    raw = _json_array(data) if from_json else data
    if raw.size != count:
        raise _fail(name, datatype, f"shape implies {count} elements but data has {raw.size}")
    dtype = DATATYPE_TO_DTYPE[datatype]
    if not from_json and raw.dtype == dtype:
        return raw.reshape(-1)  # already the datatype's own dtype: every value fits
    if datatype is Datatype.BOOL:
        return _bool_array(name, raw)
    if from_json and not no_booleans and raw.dtype.kind in "iuf" and _holds_bool(data):
        # numpy turned true/false into 1/0 alongside the numbers: never read a flag as a number.
        raise _fail(name, datatype, "values must be numbers, got a mix of numbers and booleans")
    if dtype.kind == "f":
        return _float_array(name, datatype, dtype, raw)
    return _integer_array(name, datatype, dtype, raw, data)


def _json_array(data: list[Any]) -> np.ndarray:
    """A JSON list as numpy reads it (ragged or mixed nesting: the flat element list)."""
    try:
        raw = np.asarray(data)
    except ValueError:  # ragged nesting
        raw = np.asarray(flatten(data))
    if raw.dtype == object:
        raw = np.asarray(flatten(data), dtype=object)
    return raw


def _bool_array(name: str, raw: np.ndarray) -> np.ndarray:
    if raw.size and raw.dtype.kind != "b":
        raise _fail(name, Datatype.BOOL, "values must be JSON booleans (true/false)")
    return raw.astype(np.bool_, copy=False).reshape(-1)


def _float_array(
    name: str, datatype: Datatype, dtype: np.dtype[Any], raw: np.ndarray
) -> np.ndarray:
    kind = raw.dtype.kind
    if kind == "O":
        raw = _nulls_as_nan(name, datatype, raw)
    elif raw.size and kind not in "iuf":
        raise _fail(name, datatype, f"values must be numbers, got {_describe(raw)}")
    with np.errstate(over="ignore", invalid="ignore"):
        out = raw.astype(dtype, copy=False).reshape(-1)
    if dtype.itemsize < 8 and raw.size and kind == "f" and np.isinf(out).any():
        # Some value became infinite: out of range unless it was infinite already.
        overflow = np.isinf(out) & ~np.isinf(raw.reshape(-1))
        if overflow.any():
            bad = _plain(raw.reshape(-1)[overflow][0])
            raise _fail(name, datatype, f"value {bad} is out of range")
    return out


def _nulls_as_nan(name: str, datatype: Datatype, raw: np.ndarray) -> np.ndarray:
    """Numbers mixed with JSON null (which stands for NaN in floating point tensors)."""
    flat = raw.reshape(-1)
    if any(
        not (v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))) for v in flat
    ):
        raise _fail(name, datatype, "values must be numbers or null")
    return np.array([np.nan if v is None else v for v in flat], dtype=np.float64)


def _integer_array(
    name: str, datatype: Datatype, dtype: np.dtype[Any], raw: np.ndarray, data: Any
) -> np.ndarray:
    kind = raw.dtype.kind
    if raw.size and kind not in "iu":
        if kind not in "fO":
            raise _fail(name, datatype, f"values must be integers, got {_describe(raw)}")
        # Floats or mixed magnitudes: numpy went through float64, which is lossy for
        # big integers, so convert element by element from the JSON values instead.
        source = data.reshape(-1).tolist() if isinstance(data, np.ndarray) else flatten(data)
        return _exact_integers(name, datatype, source)
    if raw.size and raw.dtype != dtype:  # numpy chose the datatype's own dtype: all fit
        _check_integer_range(name, datatype, dtype, raw)
    return raw.astype(dtype, copy=False).reshape(-1)


def _check_integer_range(
    name: str, datatype: Datatype, dtype: np.dtype[Any], raw: np.ndarray
) -> None:
    info = np.iinfo(dtype)
    flat = raw.reshape(-1)
    low, high = flat.min(), flat.max()
    if low < info.min or high > info.max:
        bad = low if low < info.min else high
        raise _fail(name, datatype, f"value {_plain(bad)} is out of range [{info.min}, {info.max}]")


def _holds_bool(data: list[Any]) -> bool:
    """Whether a JSON list that numpy read as a regular numeric array holds a boolean.

    Regular nesting means each level is all lists or all scalars, so the first item
    tells which; ``bool in map(type, ...)`` runs at C speed and stops at the first hit.
    """
    if data and type(data[0]) is list:
        return any(_holds_bool(row) for row in data)
    return bool in map(type, data)


def _exact_integers(name: str, datatype: Datatype, values: list[Any]) -> np.ndarray:
    info = np.iinfo(DATATYPE_TO_DTYPE[datatype])
    exact: list[int] = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(name, datatype, f"values must be integers, got {value!r}")
        if isinstance(value, float):
            if not value.is_integer():
                raise _fail(name, datatype, f"value {value!r} is not an integer")
            value = int(value)
        if value < info.min or value > info.max:
            raise _fail(name, datatype, f"value {value} is out of range [{info.min}, {info.max}]")
        exact.append(value)
    return np.array(exact, dtype=DATATYPE_TO_DTYPE[datatype])


def _describe(raw: np.ndarray) -> str:
    return {"b": "booleans", "U": "strings", "S": "bytes", "O": "mixed values"}.get(
        raw.dtype.kind, str(raw.dtype)
    )


def _bytes_elements(name: str, data: Any, count: int) -> list[Any]:
    if isinstance(data, np.ndarray):
        flat = list(data.reshape(-1))
    elif isinstance(data, (str, bytes)):
        flat = [data]
    else:
        flat = flatten(data)
    if len(flat) != count:
        raise _fail(
            name, Datatype.BYTES, f"shape implies {count} elements but data has {len(flat)}"
        )
    for value in flat:
        if not isinstance(value, (str, bytes)):
            raise _fail(name, Datatype.BYTES, f"values must be strings, got {type(value).__name__}")
    return flat


def decode_values(
    name: str, datatype: Datatype, shape: Sequence[int], data: Any, no_booleans: bool = False
) -> Any:
    """Validate a tensor's data against its datatype and shape; return it flat (BYTES: a list).

    ``no_booleans``: the JSON ``data`` came from holds no ``true``/``false`` (see
    ``mark_without_booleans``), so numbers need no scan for booleans mixed in.
    """
    check_shape(name, shape)
    count = element_count(shape)
    if data is None:
        raise _fail(name, datatype, "no data")
    if datatype is Datatype.BYTES:
        return _bytes_elements(name, data, count)
    return _numeric_array(name, datatype, data, count, no_booleans)


def decode_tensor(request_input: RequestInput) -> Any:
    """Validate an input and return its data as a flat numpy array (BYTES: a list).

    The result is cached on the input, so calling this twice costs nothing.
    """
    cached = decoded_data(request_input)
    if cached is not None:
        return cached
    private = request_input.__pydantic_private__
    decoded = decode_values(
        request_input.name,
        request_input.datatype,
        request_input.shape,
        request_input.data,
        bool(private and private.get("_no_booleans")),
    )
    request_input._decoded = decoded
    return decoded


def mark_without_booleans(inputs: Sequence[RequestInput], json_body: bytes) -> None:
    """Tell decoding the JSON ``inputs`` were parsed from holds no boolean literal.

    A body without the bytes ``true`` and ``false`` cannot hold a JSON boolean, so the
    per-element scan for booleans among numbers is skipped (a ``true`` inside a string
    only keeps the scan).
    """
    if b"true" in json_body or b"false" in json_body:
        return
    for request_input in inputs:
        private = request_input.__pydantic_private__
        if private is not None:
            private["_no_booleans"] = True


def tensor_as_ndarray(request_input: RequestInput | ResponseOutput) -> np.ndarray:
    """The tensor as a numpy array shaped as declared (BYTES elements as ``bytes``)."""
    if isinstance(request_input, RequestInput):
        flat = decode_tensor(request_input)
    else:
        flat = decode_values(
            request_input.name, request_input.datatype, request_input.shape, request_input.data
        )
    shape = request_input.shape
    if request_input.datatype is Datatype.BYTES:
        array = np.empty(len(flat), dtype=object)
        array[:] = [v.encode("utf-8") if isinstance(v, str) else v for v in flat]
        return array.reshape(shape)
    numeric: np.ndarray = flat
    return numeric.reshape(shape)


def validate_inputs(inputs: Sequence[RequestInput]) -> None:
    """Check names are unique and decode every input (raising on the first bad one)."""
    seen: set[str] = set()
    for request_input in inputs:
        if request_input.name in seen:
            raise InvalidRequest(f"input '{request_input.name}' appears more than once")
        seen.add(request_input.name)
        decode_tensor(request_input)


def ndarray_to_data(array: np.ndarray) -> list[Any]:
    """Flat JSON-friendly data for an array (bytes decoded as UTF-8 where possible)."""
    flat = array.reshape(-1)
    if flat.dtype.kind in "SO":
        return [_text(v) for v in flat.tolist()]
    if flat.dtype.kind == "U":
        return flat.tolist()
    return flat.tolist()


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    return value


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
