"""Streams across the worker socket, with credit-based flow control on both directions.

A stream is one ``Call(OpenStream)``: the server forwards the stream's requests as
``StreamInput`` messages (``None`` marks the end of input), the worker sends each response
as a ``StreamChunk`` the moment the model yields it, and the call's ``Reply`` ends the
stream (``None``, or the error). Both directions are bounded by the model's
``max_stream_buffer`` (the *window*):

* chunks: the worker asks the model for the next response only while fewer than
  ``window`` chunks are unacknowledged; the server acknowledges (``StreamCredit``) the
  chunks its consumer (the transport writing to the client) has taken. So a slow client
  holds the model back: at most ``window`` responses sit between the model and the client;
* requests: the server forwards at most ``window`` requests the model has not read yet;
  the worker acknowledges each one the model reads.

A ``Cancel`` naming the call (the client went away, a deadline passed) cancels the
worker's stream task: the model's generator is closed at its next ``await`` (a plain
generator: before it is asked for another response) and the call answers
``RequestCancelled``. The worker's reader thread receives inputs, credits and cancels
while its main thread runs the stream, and goes on answering pings: a stream held back
by a slow client never looks like a hung worker.

``ChildStream``/``WorkerStreams`` are the worker's half, ``PoolStream`` the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from ... import tracing
from ..._context import model_scope
from ...errors import ModelNotFound, RequestCancelled
from ...model import MLModel
from ...types import InferenceRequest
from ..deadlines import check
from ..streaming import drive_stream
from .messages import (
    OpenStream,
    StreamChunk,
    StreamCredit,
    StreamInput,
    pack_request,
    pack_response,
    unpack_request,
)

Send = Callable[[Any], None]


# -- the worker's half -------------------------------------------------------------------
class ChildStream:
    """One open stream in a worker: written by the reader thread, run on the main
    thread's event loop (each reader-thread change wakes it with one callback)."""

    def __init__(self, call_id: int, window: int, loop: asyncio.AbstractEventLoop) -> None:
        self.call_id = call_id
        self._loop = loop
        self._lock = threading.Lock()
        self._inputs: deque[tuple[Any, ...] | None] = deque()
        self._credit = max(1, window)
        self._waiter: asyncio.Future[None] | None = None
        self.cancelled = False
        self.task: asyncio.Task[None] | None = None

    # reader thread
    def deliver(self, message: StreamInput | StreamCredit) -> None:
        with self._lock:
            if isinstance(message, StreamInput):
                self._inputs.append(message.request)
            else:
                self._credit += message.count
        self._loop.call_soon_threadsafe(self._wake)

    def cancel(self) -> None:
        self.cancelled = True
        self._loop.call_soon_threadsafe(self._cancel_task)

    # main thread (its event loop)
    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _cancel_task(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def _until(self, ready: Callable[[], bool]) -> None:
        # Reader-thread changes reach this loop as callbacks, which run only while it
        # awaits: a change made before ``ready()`` is seen, one made after wakes the waiter.
        while True:
            with self._lock:
                if ready():
                    return
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def requests(self, send: Send) -> AsyncIterator[InferenceRequest]:
        """The stream's requests as the model reads them (each one acknowledged)."""
        while True:
            await self._until(lambda: bool(self._inputs))
            with self._lock:
                packed = self._inputs.popleft()
            if packed is None:
                return
            send(StreamCredit(self.call_id, 1))
            yield unpack_request(packed)

    async def run(self, model: MLModel, send: Send) -> None:
        """Drive the model's stream; ask it for a response only when one may be sent."""
        stream = drive_stream(model, self.requests(send))
        try:
            while True:
                await self._until(lambda: self._credit > 0)
                try:
                    response = await stream.__anext__()
                except StopAsyncIteration:
                    return
                with self._lock:
                    self._credit -= 1
                send(StreamChunk(self.call_id, pack_response(response)))
        finally:
            await stream.aclose()  # type: ignore[attr-defined]


class WorkerStreams:
    """The streams open in a worker, by call id (the reader thread opens them)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._open: dict[int, ChildStream] = {}

    def open(self, call_id: int, body: OpenStream) -> None:
        self._open[call_id] = ChildStream(call_id, body.window, self._loop)

    def deliver(self, message: StreamInput | StreamCredit) -> None:
        stream = self._open.get(message.call_id)
        if stream is not None:  # else: the stream has ended meanwhile
            stream.deliver(message)

    def cancel(self, call_id: int) -> None:
        stream = self._open.get(call_id)
        if stream is not None:
            stream.cancel()

    def close(self, call_id: int) -> None:
        self._open.pop(call_id, None)

    def cancel_all(self) -> None:
        """The connection the streams came on is gone: cancel each one still open."""
        for stream in list(self._open.values()):
            stream.cancel()

    def serve(self, models: dict[str, MLModel], call_id: int, body: OpenStream, send: Send) -> None:
        """Run stream ``call_id`` to its end (on the main thread); raises its error."""
        stream = self._open.get(call_id) or ChildStream(call_id, body.window, self._loop)
        try:
            model = models.get(body.key)
            if model is None:
                raise ModelNotFound(body.key.rsplit("#", 1)[0])
            check(body.deadline, model.name)  # expired while queued: not started
            with contextlib.ExitStack() as scope:
                scope.enter_context(model_scope(model.name, model.version))
                if body.trace is not None and tracing.configure_from_environment():
                    scope.enter_context(tracing.attached(tracing.extract(body.trace)))
                task = stream.task = self._loop.create_task(stream.run(model, send))
                if stream.cancelled:
                    task.cancel()
                try:
                    self._loop.run_until_complete(task)
                except asyncio.CancelledError:
                    raise RequestCancelled(
                        f"model '{model.name}': the stream was closed by its caller"
                    ) from None
        finally:
            self._open.pop(call_id, None)


# -- the server's half -------------------------------------------------------------------
class PoolStream:
    """The server's end of one stream: chunks received and not yet taken (at most
    ``window``, by the worker's credit), and the request credit the worker granted.

    Parameters:
        call_id: the stream's call.
        window: the flow-control window (the model's ``max_stream_buffer``).
        send: writes a message to the worker (a no-op once it is gone).
    """

    def __init__(self, call_id: int, window: int, send: Send) -> None:
        self.call_id = call_id
        self.window = max(1, window)
        self._send = send
        self._chunks: deque[tuple[Any, ...]] = deque()
        self._ended = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._input_credit = self.window
        self._input_waiter: asyncio.Future[None] | None = None
        self._ungranted = 0  # chunks taken and not yet acknowledged to the worker
        self._batch = max(1, self.window // 2)  # acknowledge in batches (fewer messages)

    # the worker's side (``data_received``, ``connection_lost``)
    def on_chunk(self, packed: tuple[Any, ...]) -> None:
        if not self._ended:  # after an end (a failed request iterator): dropped
            self._chunks.append(packed)
            self._wake()

    def on_credit(self, count: int) -> None:
        self._input_credit += count
        waiter = self._input_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def end(self, error: BaseException | None = None) -> None:
        """No more chunks will come (``error``: end the stream with it)."""
        if not self._ended:
            self._ended = True
            self._error = error
        self._wake()
        self.on_credit(0)  # the forwarder stops waiting too

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def ended(self) -> bool:
        return self._ended

    # the consumer's side
    async def next(self) -> tuple[Any, ...] | None:
        """The next packed response; ``None`` when the worker has ended the stream."""
        if self._ungranted and not self._chunks:
            self._grant()  # about to wait: everything taken so far may be replaced
        while not self._chunks and not self._ended:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self._chunks:
            return self._chunks.popleft()
        if self._error is not None:
            raise self._error
        return None

    def taken(self) -> None:
        """The consumer has taken the last chunk (it asks for the next one)."""
        self._ungranted += 1
        if self._ungranted >= self._batch:
            self._grant()

    def _grant(self) -> None:
        count, self._ungranted = self._ungranted, 0
        self._send(StreamCredit(self.call_id, count))

    async def forward(self, requests: AsyncIterator[InferenceRequest]) -> None:
        """Send ``requests`` to the worker as they come, at most ``window`` unread, then
        the end-of-input marker. A request iterator that fails ends the stream with its
        error (e.g. an invalid request in the middle of a stream)."""
        try:
            async for request in requests:
                while self._input_credit <= 0 and not self._ended:
                    self._input_waiter = asyncio.get_running_loop().create_future()
                    try:
                        await self._input_waiter
                    finally:
                        self._input_waiter = None
                if self._ended:
                    return
                self._input_credit -= 1
                self._send(StreamInput(self.call_id, pack_request(request)))
            self._send(StreamInput(self.call_id, None))
        except Exception as error:
            self.end(error)
