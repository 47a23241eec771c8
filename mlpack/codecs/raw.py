"""The raw tensor wire format, shared by gRPC ``raw_*_contents``, the REST binary tensor
extension and the clients.

Numbers are the datatype's fixed-size little-endian values, back to back (BOOL: one
byte, 0 or 1). BYTES elements are each a 4-byte little-endian length followed by that
many bytes. Decoding reads numbers with ``np.frombuffer`` (no per-element loop, no copy)
and checks the byte count against the shape; encoding validates a model's output
against its shape and datatype first.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..errors import InvalidRequest, ModelError
from ..types import Datatype, ResponseOutput, as_datatype
from .tensors import DATATYPE_TO_DTYPE, decode_values, element_count

# Raw tensor data is little-endian whatever the host.
RAW_DTYPES: dict[Datatype, np.dtype[Any]] = {
    datatype: dtype.newbyteorder("<")
    for datatype, dtype in DATATYPE_TO_DTYPE.items()
    if datatype is not Datatype.BYTES
}
_LENGTH = struct.Struct("<I")


def _fail(role: str, name: str, datatype: Datatype, problem: str) -> InvalidRequest:
    return InvalidRequest(f"{role} '{name}' ({datatype.value}): {problem}")


# ---- decoding ---------------------------------------------------------------------------


def raw_to_array(
    raw: bytes | memoryview,
    datatype: Datatype,
    shape: Sequence[int],
    *,
    name: str = "?",
    role: str = "input",
    where: str = "raw contents",
) -> Any:
    """Decode one tensor's raw bytes: a flat read-only array over ``raw`` (BYTES: a list).

    ``name``, ``role`` and ``where`` name the tensor and the bytes in error messages.
    """
    count = element_count(shape)
    if datatype is Datatype.BYTES:
        elements = split_bytes(raw, name=name, role=role, where=where)
        if len(elements) != count:
            raise _fail(
                role,
                name,
                datatype,
                f"{where} holds {len(elements)} elements but the shape implies {count}",
            )
        return elements
    dtype = RAW_DTYPES[datatype]
    expected = count * dtype.itemsize
    if len(raw) != expected:
        raise _fail(
            role,
            name,
            datatype,
            (
                f"{where} has {len(raw)} bytes but shape {list(shape)} needs {expected} "
                f"({count} elements × {dtype.itemsize} bytes)"  # noqa: RUF001
            ),
        )
    if datatype is Datatype.BOOL:
        octets = np.frombuffer(raw, dtype=np.uint8)
        if count and int(octets.max()) > 1:
            raise _fail(role, name, datatype, f"{where} holds a byte other than 0 or 1")
    array = np.frombuffer(raw, dtype=dtype)
    if not array.dtype.isnative:  # big-endian host
        array = array.astype(array.dtype.newbyteorder("="))
    return array


def split_bytes(
    raw: bytes | memoryview, *, name: str = "?", role: str = "input", where: str = "raw contents"
) -> list[bytes]:
    """The elements of length-prefixed BYTES data (a truncated element is an error)."""
    raw = bytes(raw)  # slicing bytes gives bytes elements
    elements: list[bytes] = []
    size = len(raw)
    position = 0
    unpack = _LENGTH.unpack_from
    while position < size:
        if position + 4 > size:
            raise _fail(
                role,
                name,
                Datatype.BYTES,
                (
                    f"{where} ends inside the length prefix of element {len(elements)} "
                    f"(offset {position}, {size - position} bytes left)"
                ),
            )
        (length,) = unpack(raw, position)
        start = position + 4
        end = start + length
        if end > size:
            raise _fail(
                role,
                name,
                Datatype.BYTES,
                (
                    f"{where}: element {len(elements)} declares {length} bytes "
                    f"at offset {position} "
                    f"but only {size - start} remain"
                ),
            )
        elements.append(raw[start:end])
        position = end
    return elements


# ---- encoding ---------------------------------------------------------------------------


def array_to_raw(flat: Any, datatype: Datatype) -> bytes:
    """Raw bytes for flat tensor data (numbers little-endian; BYTES: ``bytes`` elements)."""
    if datatype is Datatype.BYTES:
        return join_bytes(flat)
    return np.ascontiguousarray(flat, dtype=RAW_DTYPES[datatype]).tobytes()


def join_bytes(values: Iterable[bytes]) -> bytes:
    """Length-prefixed BYTES data for ``values``."""
    pack = _LENGTH.pack
    return b"".join(part for value in values for part in (pack(len(value)), value))


def flat_output(output: ResponseOutput) -> Any:
    """A model output's data as a flat array of its datatype (BYTES: a list of bytes).

    Data that does not match the output's shape or datatype raises ``ModelError``.
    """
    datatype = as_datatype(output.datatype)
    data = output.data
    if (
        isinstance(data, np.ndarray)
        and datatype is not Datatype.BYTES
        and data.dtype == DATATYPE_TO_DTYPE[datatype]
    ):
        if data.size != element_count(output.shape):
            raise ModelError(
                f"output '{output.name}' ({datatype.value}): shape {list(output.shape)} implies "
                f"{element_count(output.shape)} elements but data has {data.size}"
            )
        return data.reshape(-1)
    try:
        flat = decode_values(output.name, datatype, output.shape, data)
    except InvalidRequest as error:
        # The validator speaks of inputs; here the model produced the tensor.
        raise ModelError(error.message.replace("input '", "output '", 1)) from None
    if datatype is Datatype.BYTES:
        return [v.encode("utf-8") if isinstance(v, str) else v for v in flat]
    return flat


def output_to_raw(output: ResponseOutput) -> bytes:
    """Raw bytes of a model's output (checked against its shape and datatype)."""
    return array_to_raw(flat_output(output), as_datatype(output.datatype))


__all__ = [
    "RAW_DTYPES",
    "array_to_raw",
    "flat_output",
    "join_bytes",
    "output_to_raw",
    "raw_to_array",
    "split_bytes",
]
