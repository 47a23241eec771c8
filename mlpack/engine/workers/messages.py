"""Picklable messages between the server and its worker processes, and their framing.

A frame is a 12-byte header (pickle length, number of out-of-band buffers), the
pickle (protocol 5), then each buffer as an 8-byte length and its bytes. numpy arrays
travel out of band, so a big tensor is written to the socket straight from its memory.
"""

from __future__ import annotations

import pickle
import struct
from dataclasses import dataclass
from typing import Any, Optional

from ...settings import ModelSettings
from ...types import InferenceRequest

HEADER = struct.Struct("!QI")
LENGTH = struct.Struct("!Q")


@dataclass
class LoadModel:
    """Load ``settings`` under ``key`` (a runner-unique name)."""

    key: str
    settings: ModelSettings


@dataclass
class UnloadModel:
    key: str


@dataclass
class Predict:
    key: str
    request: InferenceRequest


@dataclass
class Ping:
    pass


@dataclass
class Stop:
    pass


@dataclass
class Call:
    """A request to a worker; ``call_id`` pairs it with its ``Reply``."""

    call_id: int
    body: Any


@dataclass
class Reply:
    call_id: int
    value: Any = None
    error: Optional[BaseException] = None


def prepare_request(request: InferenceRequest) -> InferenceRequest:
    """A copy whose tensor data is the validated numpy array (sent out of band), not JSON lists."""
    inputs = []
    for request_input in request.inputs:
        decoded = request_input._decoded
        if decoded is not None and not isinstance(decoded, list):
            copied = request_input.model_copy(update={"data": decoded})
            copied._decoded = decoded
            inputs.append(copied)
        else:
            inputs.append(request_input)
    return request.model_copy(update={"inputs": inputs})


# Out-of-band buffers smaller than this are copied into the frame's first chunk, so a
# small message is one chunk (one system call); bigger ones are sent from their memory.
_INLINE_LIMIT = 64 * 1024


def encode_frame(message: Any) -> list[bytes | memoryview]:
    """``message`` as the byte chunks of one frame (one chunk unless a buffer is big)."""
    buffers: list[pickle.PickleBuffer] = []
    payload = pickle.dumps(message, protocol=5, buffer_callback=buffers.append)
    head = bytearray(HEADER.pack(len(payload), len(buffers)))
    head += payload
    chunks: list[bytes | memoryview] = []
    for buffer in buffers:
        raw = buffer.raw()
        head += LENGTH.pack(raw.nbytes)
        if raw.nbytes <= _INLINE_LIMIT:
            head += raw
        else:
            chunks.append(bytes(head))
            chunks.append(raw)
            head = bytearray()
    if head or not chunks:
        chunks.append(bytes(head))
    return chunks


class FrameDecoder:
    """Incremental frame parser: feed bytes, get messages."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._want: Optional[tuple[int, int]] = None

    def feed(self, data: bytes) -> list[Any]:
        self._data += data
        messages = []
        while True:
            message = self._next()
            if message is _INCOMPLETE:
                return messages
            messages.append(message)

    def _next(self) -> Any:
        data = self._data
        if len(data) < HEADER.size:
            return _INCOMPLETE
        size, count = HEADER.unpack_from(data)
        offset = HEADER.size + size
        spans = []
        for _ in range(count):
            if len(data) < offset + LENGTH.size:
                return _INCOMPLETE
            (length,) = LENGTH.unpack_from(data, offset)
            offset += LENGTH.size
            spans.append((offset, length))
            offset += length
        if len(data) < offset:
            return _INCOMPLETE
        view = memoryview(data)
        try:
            buffers = [bytearray(view[start:start + length]) for start, length in spans]
            message = pickle.loads(view[HEADER.size:HEADER.size + size], buffers=buffers)
        finally:
            view.release()
        del data[:offset]
        return message


_INCOMPLETE = object()
