"""Picklable messages between the server and its worker processes, and their framing.

A frame is a 12-byte header (pickle length, number of out-of-band buffers), the
pickle (protocol 5), then each buffer as an 8-byte length and its bytes. Big numpy
arrays travel out of band, so a big tensor is written to the socket straight from its
memory; small ones travel as their bytes plus (dtype, shape), which pickles several times
faster than an array. The hottest messages (a prediction call and a successful reply)
cross as plain tuples: pickling a tuple is much cheaper than pickling a dataclass.
"""

from __future__ import annotations

import pickle
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...settings import ModelSettings
from ...types import (
    Datatype,
    InferenceRequest,
    InferenceResponse,
    Parameters,
    RequestInput,
    RequestOutput,
    ResponseOutput,
    decoded_data,
    trusted,
)

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
    """Run the model under ``key`` on a request packed by ``pack_request``.

    ``deadline`` (``time.monotonic()``, system-wide on Linux): not started after it.
    """

    key: str
    request: tuple[Any, ...]
    deadline: float | None = None
    trace: dict[str, str] | None = None  # W3C trace context (tracing on only)


@dataclass
class Ping:
    pass


@dataclass
class Cancel:
    """The caller of call ``call_id`` gave up: do not start it (sent without a reply)."""

    call_id: int


@dataclass
class Status:
    """Ask for the worker's ``WorkerStatus`` (answered by its reader thread, like a ping)."""


@dataclass
class ReportReceived:
    """Owner → worker: answer with the ``WorkerStatus`` once the worker has received
    ``count`` predictions over all its connections (front-ends' too). A shared pool keeps
    one pending per worker, so ``max_requests_per_worker`` recycles it whatever the ping
    interval. Answered by a reader thread; the only call a worker answers late."""

    count: int


@dataclass
class WorkerStatus:
    """What a worker has done with predictions: received, started and answered (a call
    skipped because its caller left counts as answered, not started).

    ``received - answered`` calls are held by the worker: one computing, the rest queued.
    """

    pid: int
    received: int
    started: int
    answered: int
    connections: int = 0  # front-end data connections open (``Listen``)


@dataclass
class Stop:
    pass


@dataclass
class OpenStream:
    """Run the ``predict_stream`` of the model under ``key`` (a ``Call`` body).

    The stream's requests follow as ``StreamInput`` messages; the worker sends each
    response as a ``StreamChunk`` the moment the model yields it, with at most ``window``
    chunks not yet acknowledged by a ``StreamCredit`` (flow control), and ends the stream
    with the call's ``Reply`` (``None``, or the error). A ``Cancel`` naming the call closes
    the model's generator before it yields again.
    """

    key: str
    window: int
    deadline: float | None = None
    trace: dict[str, str] | None = None


@dataclass
class StreamInput:
    """The next request of stream ``call_id`` (``pack_request``); ``None``: no more."""

    call_id: int
    request: tuple[Any, ...] | None


@dataclass
class StreamChunk:
    """A response of stream ``call_id`` (``pack_response``), worker to server."""

    call_id: int
    response: tuple[Any, ...]


@dataclass
class StreamCredit:
    """The receiving side of stream ``call_id`` has taken ``count`` more items: chunks
    (server to worker: the worker may send that many more) or requests (worker to
    server: the server may forward that many more)."""

    call_id: int
    count: int


@dataclass
class Call:
    """A request to a worker; ``call_id`` pairs it with its ``Reply``."""

    call_id: int
    body: Any


@dataclass
class Reply:
    """The answer to call ``call_id``; ``started`` is when the worker began it
    (``time.monotonic()``): the time before it was spent queued in the worker."""

    call_id: int
    value: Any = None
    error: BaseException | None = None
    started: float | None = None


# -- shared workers (front-ends connect to a worker's own socket) --------------------------
@dataclass
class Listen:
    """Owner → worker: also accept data connections on the Unix socket at ``path``
    (one per front-end, at most ``max_connections`` open; see ``workers.connections``).
    Answered with the path."""

    path: str
    max_connections: int = 64


@dataclass
class WorkerInfo:
    """One worker of a shared pool as a front-end sees it: where to connect, its pid (to
    kill it when a call hangs), the model keys it serves, and whether it is retiring."""

    worker_id: int
    pid: int
    path: str
    models: frozenset[str]
    retiring: bool = False


def pack_request(request: InferenceRequest) -> tuple[Any, ...]:
    """A validated request as plain tuples: cheap to pickle, tensor data as numpy (out of band)."""
    inputs = []
    for request_input in request.inputs:
        decoded = decoded_data(request_input)
        data = request_input.data if decoded is None else decoded
        inputs.append(
            (
                request_input.name,
                request_input.shape,
                request_input.datatype.value,
                _pack_parameters(request_input.parameters),
                *_pack_data(data),
                decoded is not None,
            )
        )
    return (
        request.id,
        _pack_parameters(request.parameters),
        inputs,
        None
        if request.outputs is None
        else [(o.name, _pack_parameters(o.parameters)) for o in request.outputs],
    )


def unpack_request(packed: tuple[Any, ...]) -> InferenceRequest:
    """Rebuild a request packed by ``pack_request``; validated inputs are not validated again."""
    request_id, parameters, inputs, outputs = packed
    built = []
    for name, shape, datatype, input_parameters, payload, form, validated in inputs:
        data = _unpack_data(payload, form)
        request_input = trusted(
            RequestInput,
            name=name,
            shape=shape,
            datatype=Datatype(datatype),
            parameters=_unpack_parameters(input_parameters),
            data=data,
        )
        if validated:  # the sender's validator already decoded it: do not decode again
            request_input._decoded = data
        built.append(request_input)
    return trusted(
        InferenceRequest,
        id=request_id,
        parameters=_unpack_parameters(parameters),
        inputs=built,
        outputs=None
        if outputs is None
        else [
            trusted(RequestOutput, name=name, parameters=_unpack_parameters(p))
            for name, p in outputs
        ],
    )


def pack_response(response: InferenceResponse) -> tuple[Any, ...]:
    """A model's response as plain tuples (numpy data out of band)."""
    return (
        response.model_name,
        response.model_version,
        response.id,
        _pack_parameters(response.parameters),
        [
            (
                o.name,
                o.shape,
                Datatype(o.datatype).value,
                _pack_parameters(o.parameters),
                *_pack_data(o.data),
            )
            for o in response.outputs
        ],
    )


def unpack_response(packed: tuple[Any, ...]) -> InferenceResponse:
    model_name, model_version, response_id, parameters, outputs = packed
    return trusted(
        InferenceResponse,
        model_name=model_name,
        model_version=model_version,
        id=response_id,
        parameters=_unpack_parameters(parameters),
        outputs=[
            trusted(
                ResponseOutput,
                name=name,
                shape=shape,
                datatype=Datatype(datatype),
                parameters=_unpack_parameters(p),
                data=_unpack_data(payload, form),
            )
            for name, shape, datatype, p, payload, form in outputs
        ],
    )


# Data up to this size rides inside the frame's first chunk: small arrays as bytes with
# (dtype, shape), small out-of-band buffers copied in (one chunk is one system call);
# bigger ones are sent from their own memory.
_SMALL = 64 * 1024
_PLAIN_KINDS = frozenset("biufcmM")  # fixed-size dtypes whose ``dtype.str`` round-trips


def _pack_data(data: Any) -> tuple[Any, tuple[str, tuple[int, ...]] | None]:
    """(payload, form): a small plain array as its bytes and (dtype, shape); else as is."""
    if type(data) is np.ndarray and data.dtype.kind in _PLAIN_KINDS and data.nbytes <= _SMALL:
        return data.tobytes(), (data.dtype.str, data.shape)
    return data, None


def _unpack_data(payload: Any, form: tuple[str, tuple[int, ...]] | None) -> Any:
    if form is None:
        return payload
    dtype, shape = form
    # A writable array, as the sender had: models may work in place.
    return np.frombuffer(bytearray(payload), dtype=dtype).reshape(shape)


def _pack_parameters(parameters: Parameters | None) -> dict[str, Any] | None:
    if parameters is None:
        return None
    values = dict(parameters.__dict__)
    if parameters.__pydantic_extra__:
        values.update(parameters.__pydantic_extra__)
    return values


def _unpack_parameters(values: dict[str, Any] | None) -> Parameters | None:
    return None if values is None else Parameters.model_construct(**values)


_CALL_PREDICT, _REPLY_VALUE, _OTHER, _CALL_PREDICT_TRACED = 0, 1, 2, 3
_STREAM_CHUNK, _STREAM_CREDIT = 4, 5


def _to_wire(message: Any) -> tuple[Any, ...]:
    if type(message) is Call and type(message.body) is Predict:
        body = message.body
        if body.trace is not None:
            return (
                _CALL_PREDICT_TRACED,
                message.call_id,
                body.key,
                body.request,
                body.deadline,
                body.trace,
            )
        return (_CALL_PREDICT, message.call_id, body.key, body.request, body.deadline)
    if type(message) is Reply and message.error is None:
        return (_REPLY_VALUE, message.call_id, message.value, message.started)
    if type(message) is StreamChunk:
        return (_STREAM_CHUNK, message.call_id, message.response)
    if type(message) is StreamCredit:
        return (_STREAM_CREDIT, message.call_id, message.count)
    return (_OTHER, message)


def from_wire(wire: tuple[Any, ...]) -> Any:
    """The message an unpickled frame holds (see ``_to_wire``)."""
    tag = wire[0]
    if tag == _CALL_PREDICT:
        return Call(wire[1], Predict(wire[2], wire[3], wire[4]))
    if tag == _REPLY_VALUE:
        return Reply(wire[1], wire[2], None, wire[3])
    if tag == _CALL_PREDICT_TRACED:
        return Call(wire[1], Predict(wire[2], wire[3], wire[4], wire[5]))
    if tag == _STREAM_CHUNK:
        return StreamChunk(wire[1], wire[2])
    if tag == _STREAM_CREDIT:
        return StreamCredit(wire[1], wire[2])
    return wire[1]


def encode_frame(message: Any) -> list[bytes | memoryview]:
    """``message`` as the byte chunks of one frame (one chunk unless a buffer is big)."""
    buffers: list[pickle.PickleBuffer] = []
    payload = pickle.dumps(_to_wire(message), protocol=5, buffer_callback=buffers.append)
    head = bytearray(HEADER.pack(len(payload), len(buffers)))
    head += payload
    chunks: list[bytes | memoryview] = []
    for buffer in buffers:
        raw = buffer.raw()
        head += LENGTH.pack(raw.nbytes)
        if raw.nbytes <= _SMALL:
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
        self._want: tuple[int, int] | None = None

    def feed(self, data: bytes) -> list[Any]:
        self._data += data
        messages: list[Any] = []
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
            buffers = [bytearray(view[start : start + length]) for start, length in spans]
            message = from_wire(
                pickle.loads(view[HEADER.size : HEADER.size + size], buffers=buffers)
            )
        finally:
            view.release()
        del data[:offset]
        return message


_INCOMPLETE = object()
