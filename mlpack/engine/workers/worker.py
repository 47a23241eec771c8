"""The worker process: a module-level entry point that loads models and runs predictions.

Requests arrive one frame at a time on a socket (the owner's, and front-ends' data
connections once it listens: ``workers.connections``). A reader thread per connection
answers pings and status queries at once (so the server can tell a busy worker from a hung
or stopped one) and queues every other message for the main thread, which answers them in
order: the server may send the next prediction while one computes (its pipeline), so the
worker starts it the moment the current one ends, without waiting for the server. SIGINT
and SIGTERM are ignored: the server stops its workers itself, after in-flight requests have
finished, and a worker exits on its own when the server's end closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from ... import tracing
from ...errors import MLPackError, ModelError, ModelNotFound, RequestCancelled
from ...model import MLModel
from ..deadlines import check
from ..failures import attach_traceback
from ..invocation import build_and_load, predict_blocking, unload_model
from .connections import Connections, Inbox
from .messages import (
    Call,
    LoadModel,
    OpenStream,
    Ping,
    Predict,
    Reply,
    Stop,
    UnloadModel,
    WorkerStatus,
    pack_response,
    unpack_request,
)
from .streams import WorkerStreams

logger = logging.getLogger("mlpack.worker")


class _Counters:
    """Predictions received (reader threads), started and answered (main thread)."""

    def __init__(self) -> None:
        self.received = 0
        self.started = 0
        self.answered = 0

    def status(self, connections: int = 0) -> WorkerStatus:
        return WorkerStatus(os.getpid(), self.received, self.started, self.answered, connections)


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
    inbox: Inbox = queue.SimpleQueue()
    loop = models.loop
    connections = Connections(inbox, counters, lambda: WorkerStreams(loop))
    connections.serve(sock, owner=True)
    while True:
        connection, message = inbox.get()
        if not isinstance(message, Call) or isinstance(message.body, Stop):
            if connection.owner:  # the owner's Stop, or its end closed
                if isinstance(message, Call):
                    with contextlib.suppress(OSError):
                        connection.send(Reply(message.call_id))
                break
            continue
        predict = isinstance(message.body, Predict)
        started = time.monotonic()
        if connection.closed or message.call_id in connection.cancelled:
            # Its caller left while it was queued here (or its connection is gone).
            connection.cancelled.discard(message.call_id)
            connection.streams.close(message.call_id)
            reply = Reply(message.call_id, error=RequestCancelled("the caller gave up"))
        else:
            try:
                value = None
                if isinstance(message.body, OpenStream):  # chunks go out as produced
                    connection.streams.serve(
                        models.models, message.call_id, message.body, connection.send
                    )
                else:
                    value = models.handle(message.body)
                reply = Reply(message.call_id, value=value, started=started)
            except BaseException as error:  # every failure goes back to the caller
                reply = Reply(message.call_id, error=_picklable(error), started=started)
        counters.answered += predict
        cancelled = connection.cancelled
        if cancelled:  # a cancellation that came too late names an answered call: forget it
            cancelled.difference_update([i for i in cancelled if i <= message.call_id])
        try:
            connection.send(reply)
        except OSError:
            if connection.owner:
                break
        except Exception as error:  # an unpicklable result
            with contextlib.suppress(OSError):
                connection.send(
                    Reply(
                        message.call_id,
                        error=ModelError(f"cannot send the result back: {error!r}"),
                    )
                )
    connections.close()
    for key in list(models.models):
        try:
            models.handle(UnloadModel(key))
        except Exception:
            logger.exception("unloading '%s' failed", key)
    with contextlib.suppress(Exception):
        models.loop.close()  # before interpreter exit tears down the sockets it holds
    sock.close()
