"""The worker process: a module-level entry point that loads models and runs predictions.

Requests arrive one frame at a time on a socket. A reader thread answers pings and status
queries at once (so the server can tell a busy worker from a hung or stopped one) and queues
every other message for the main thread, which answers them in order: the server may send
the next prediction while one computes (its pipeline), so the worker starts it the moment
the current one ends, without waiting for the server. SIGINT and SIGTERM are
ignored: the server stops its workers itself, after in-flight requests have finished,
and a worker exits on its own when the server's end closes.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import pickle
import queue
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from ... import tracing
from ...errors import MLPackError, ModelError, ModelNotFound, RequestCancelled
from ...model import MLModel
from ..deadlines import check
from ..failures import attach_traceback
from ..invocation import build_and_load, predict_blocking, unload_model
from .messages import (
    HEADER,
    LENGTH,
    Call,
    Cancel,
    LoadModel,
    OpenStream,
    Ping,
    Predict,
    Reply,
    Status,
    Stop,
    StreamCredit,
    StreamInput,
    UnloadModel,
    WorkerStatus,
    encode_frame,
    from_wire,
    pack_response,
    unpack_request,
)
from .streams import WorkerStreams

logger = logging.getLogger("mlpack.worker")


def _read_exactly(stream: io.BufferedIOBase, size: int) -> bytearray | None:
    buffer = bytearray(size)
    if stream.readinto(buffer) != size:  # a buffered stream reads until full or EOF
        return None
    return buffer


def receive(sock: io.BufferedIOBase) -> Any:
    """The next message on a buffered socket stream (blocking), or ``Stop()`` at EOF.

    The stream is buffered, so a small frame costs one ``recv`` rather than one per field.
    """
    header = _read_exactly(sock, HEADER.size)
    if header is None:
        return Stop()
    size, count = HEADER.unpack(header)
    payload = _read_exactly(sock, size)
    buffers = []
    for _ in range(count):
        length = _read_exactly(sock, LENGTH.size)
        if length is None:
            return Stop()
        buffers.append(_read_exactly(sock, LENGTH.unpack(length)[0]))
    if payload is None or any(b is None for b in buffers):
        return Stop()
    return from_wire(pickle.loads(payload, buffers=buffers))


_send_lock = threading.Lock()


def send(sock: socket.socket, message: Any) -> None:
    chunks = encode_frame(message)
    with _send_lock:  # the reader thread answers pings while the main thread replies
        for chunk in chunks:
            sock.sendall(chunk)


class _Counters:
    """Predictions received (reader thread), started and answered (main thread)."""

    def __init__(self) -> None:
        self.received = 0
        self.started = 0
        self.answered = 0

    def status(self) -> WorkerStatus:
        return WorkerStatus(os.getpid(), self.received, self.started, self.answered)


def _read_messages(
    stream: io.BufferedIOBase,
    sock: socket.socket,
    inbox: queue.SimpleQueue[Any],
    cancelled: set[int],
    counters: _Counters,
    streams: WorkerStreams | None = None,
) -> None:
    """Reader thread: answer pings and status queries now, note cancellations, feed open
    streams (requests, credit), hand the rest to the main thread."""
    while True:
        message = receive(stream)
        if streams is not None and type(message) in (StreamInput, StreamCredit):
            streams.deliver(message)
            continue
        if isinstance(message, Call) and isinstance(message.body, Cancel):
            cancelled.add(message.body.call_id)
            if streams is not None:
                streams.cancel(message.body.call_id)
            continue
        if isinstance(message, Call) and isinstance(message.body, OpenStream) and streams:
            streams.open(message.call_id, message.body)  # before its inputs can arrive
        if isinstance(message, Call) and isinstance(message.body, (Ping, Status)):
            value = os.getpid() if isinstance(message.body, Ping) else counters.status()
            try:
                send(sock, Reply(message.call_id, value=value))
            except OSError:
                message = Stop()
            else:
                continue
        if isinstance(message, Call) and isinstance(message.body, Predict):
            counters.received += 1
        inbox.put(message)
        if isinstance(message, Stop) or not isinstance(message, Call):
            return


class _Models:
    """The models this worker has loaded, by runner key."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.models: dict[str, MLModel] = {}
        self.counters = _Counters()

    def handle(self, body: Any) -> Any:
        if isinstance(body, Predict):
            model = self.models.get(body.key)
            if model is None:
                raise ModelNotFound(body.key.rsplit("#", 1)[0])
            check(body.deadline, model.name)  # expired while queued: not started
            self.counters.started += 1
            request = unpack_request(body.request)
            if body.trace is not None and tracing.configure_from_environment():
                with tracing.attached(tracing.extract(body.trace)):
                    return pack_response(predict_blocking(model, request, self.loop))
            return pack_response(predict_blocking(model, request, self.loop))
        if isinstance(body, LoadModel):
            model, metadata = self.loop.run_until_complete(build_and_load(body.settings))
            self.models[body.key] = model
            return metadata
        if isinstance(body, UnloadModel):
            model = self.models.pop(body.key, None)
            if model is not None:
                self.loop.run_until_complete(unload_model(model))
            return None
        if isinstance(body, Ping):
            return os.getpid()
        raise TypeError(f"unknown message {type(body).__name__}")


def _picklable(error: BaseException) -> BaseException:
    if isinstance(error, MLPackError):
        return error
    return attach_traceback(ModelError(repr(error)), error)


def run_worker(
    sock: socket.socket,
    worker_id: int,
    on_start: Callable[[], None] | None = None,
    models: _Models | None = None,
) -> None:
    """Entry point of a worker process: serve calls on ``sock`` until told to stop.

    ``models``: those already loaded (a worker forked from a zygote starts with them).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s %(levelname)-5s [worker {worker_id}] [%(name)s] %(message)s",
    )
    if on_start is not None:
        on_start()
    models = models if models is not None else _Models()
    counters = models.counters = _Counters()  # this process's own (a zygote's child too)
    sock.setblocking(True)
    stream = io.BufferedReader(socket.SocketIO(sock, "rb"), buffer_size=256 * 1024)
    inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
    cancelled: set[int] = set()  # calls whose caller gave up before they started
    streams = WorkerStreams(models.loop)
    reader = threading.Thread(
        target=_read_messages,
        args=(stream, sock, inbox, cancelled, counters, streams),
        name="mlpack-worker-reader",
        daemon=True,
    )
    reader.start()
    while True:
        message = inbox.get()
        if isinstance(message, Stop) or not isinstance(message, Call):
            break
        if isinstance(message.body, Stop):
            send(sock, Reply(message.call_id))
            break
        predict = isinstance(message.body, Predict)
        started = time.monotonic()
        if message.call_id in cancelled:  # the caller left while this call was queued here
            cancelled.discard(message.call_id)
            streams.close(message.call_id)
            reply = Reply(message.call_id, error=RequestCancelled("the caller gave up"))
        else:
            try:
                value = None
                if isinstance(message.body, OpenStream):  # chunks go out as produced
                    streams.serve(
                        models.models, message.call_id, message.body, lambda m: send(sock, m)
                    )
                else:
                    value = models.handle(message.body)
                reply = Reply(message.call_id, value=value, started=started)
            except BaseException as error:  # every failure goes back to the caller
                reply = Reply(message.call_id, error=_picklable(error), started=started)
        counters.answered += predict
        if cancelled:  # a cancellation that came too late names an answered call: forget it
            cancelled.difference_update([i for i in cancelled if i <= message.call_id])
        try:
            send(sock, reply)
        except (BrokenPipeError, ConnectionResetError):
            break
        except Exception as error:  # an unpicklable result
            send(
                sock,
                Reply(message.call_id, error=ModelError(f"cannot send the result back: {error!r}")),
            )
    for key in list(models.models):
        try:
            models.handle(UnloadModel(key))
        except Exception:
            logger.exception("unloading '%s' failed", key)
    sock.close()
