"""A worker's connections: its owner's socket and the front-ends' data connections.

The owner is the pool that started the worker (the server's, or with several front-ends
their supervisor's). It alone loads, unloads and stops models, over the socket the worker
was started with; when that socket closes the worker stops. After ``Listen`` the worker
also listens on a Unix socket in the owner's private run folder and accepts *data*
connections, one per front-end, at most ``Listen.max_connections`` at once (beyond that a
new connection is closed at once; the supervisor allows twice its front-ends plus two).
Each connection has its own call ids, cancellations and streams; its reader thread answers
pings and status queries, and queues everything else on the one inbox the main thread
answers in arrival order (a worker computes one call at a time); each reply goes back on
the connection its call came in on. A data connection asking to load, unload or stop is
answered with an error; its end (the front-end closed it or died) closes that connection
only, and cancels its open streams.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import pickle
import queue
import socket
import threading
from collections.abc import Callable
from typing import Any

from ...errors import MLPackError
from .messages import (
    HEADER,
    LENGTH,
    Call,
    Cancel,
    Listen,
    LoadModel,
    OpenStream,
    Ping,
    Predict,
    Reply,
    ReportReceived,
    Status,
    Stop,
    StreamCredit,
    StreamInput,
    UnloadModel,
    encode_frame,
    from_wire,
)
from .streams import WorkerStreams

logger = logging.getLogger("mlpack.worker")

# Front-end connections one worker accepts at once unless its owner says otherwise
# (``Listen.max_connections``; the supervisor sets twice its front-ends plus two, as a
# replacement front-end may connect before its predecessor's connection is seen closed).
MAX_DATA_CONNECTIONS = 64
_OWNER_ONLY = (LoadModel, UnloadModel, Stop, Listen, ReportReceived)


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


class Connection:
    """One connection of a worker: its socket, call ids' cancellations and open streams."""

    def __init__(self, sock: socket.socket, owner: bool, streams: WorkerStreams) -> None:
        sock.setblocking(True)
        self.sock = sock
        self.owner = owner
        self.streams = streams
        self.cancelled: set[int] = set()  # calls whose caller gave up before they started
        self.closed = False
        self.reader = io.BufferedReader(socket.SocketIO(sock, "rb"), buffer_size=256 * 1024)
        self._lock = threading.Lock()  # the reader thread answers pings while main replies

    def send(self, message: Any) -> None:
        """Write one message (OSError once the connection is closed)."""
        chunks = encode_frame(message)
        with self._lock:
            if self.closed:
                raise BrokenPipeError("the connection is closed")
            for chunk in chunks:
                self.sock.sendall(chunk)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()


Inbox = queue.SimpleQueue[tuple[Connection, Any]]


class Connections:
    """Every connection of one worker, feeding its inbox (one reader thread each).

    Parameters:
        inbox: where calls go for the main thread, as (connection, message).
        counters: the worker's counts (``received`` counted here; ``status(connections)``).
        new_streams: a fresh ``WorkerStreams`` for each connection (the main thread's loop).
    """

    def __init__(
        self,
        inbox: Inbox,
        counters: Any,
        new_streams: Callable[[], WorkerStreams],
    ) -> None:
        self.inbox = inbox
        self._counters = counters
        self._new_streams = new_streams
        self._data: set[Connection] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.path: str | None = None
        self.max_connections = MAX_DATA_CONNECTIONS
        self._reports: list[tuple[Connection, int, int]] = []  # (owner, call id, count)

    @property
    def data_connections(self) -> int:
        with self._lock:
            return len(self._data)

    def serve(self, sock: socket.socket, owner: bool) -> Connection:
        """Start reading ``sock`` on a thread of its own; its ``Connection``."""
        connection = Connection(sock, owner, self._new_streams())
        if not owner:
            with self._lock:
                self._data.add(connection)
        threading.Thread(
            target=self._read,
            args=(connection,),
            name="mlpack-worker-reader" if owner else "mlpack-worker-data",
            daemon=True,
        ).start()
        return connection

    def _read(self, connection: Connection) -> None:
        """Reader thread: answer pings and status queries now, note cancellations, feed open
        streams (requests, credit), hand the rest to the main thread."""
        try:
            self._read_until_end(connection)
        except Exception:  # a malformed frame: this connection ends, the worker goes on
            if connection.owner:
                self.inbox.put((connection, Stop()))
            else:
                logger.exception("a data connection sent a malformed frame; closing it")
        finally:
            if not connection.owner:
                self._drop(connection)

    def _read_until_end(self, connection: Connection) -> None:
        streams = connection.streams
        while True:
            message = receive(connection.reader)
            kind = type(message)
            if kind is StreamInput or kind is StreamCredit:
                streams.deliver(message)
                continue
            if kind is not Call:  # EOF (``Stop()``) or garbage: this connection ends
                if connection.owner:
                    self.inbox.put((connection, Stop()))
                return
            body = message.body
            if isinstance(body, Cancel):
                connection.cancelled.add(body.call_id)
                streams.cancel(body.call_id)
                continue
            if isinstance(body, OpenStream):
                streams.open(message.call_id, body)  # before its inputs can arrive
            elif isinstance(body, Predict):
                with self._lock:  # several reader threads count
                    self._counters.received += 1
                    due = self._due_reports() if self._reports else []
                self._send_reports(due)
            elif connection.owner and isinstance(body, ReportReceived):
                with self._lock:
                    self._reports.append((connection, message.call_id, body.count))
                    due = self._due_reports()
                self._send_reports(due)
                continue
            elif isinstance(body, (Ping, Status, Listen)) or (
                not connection.owner and isinstance(body, _OWNER_ONLY)
            ):
                if not self._answer_now(connection, message.call_id, body):
                    return
                continue
            self.inbox.put((connection, message))
            if connection.owner and isinstance(body, Stop):
                return

    def _due_reports(self) -> list[tuple[Connection, int, int]]:
        """The ``ReportReceived`` calls whose count is reached (taken off; under the lock)."""
        received = self._counters.received
        due = [report for report in self._reports if received >= report[2]]
        if due:
            self._reports = [report for report in self._reports if received < report[2]]
        return due

    def _send_reports(self, due: list[tuple[Connection, int, int]]) -> None:
        for connection, call_id, _ in due:
            status = self._counters.status(self.data_connections)
            with contextlib.suppress(OSError):  # the owner has gone: its reader stops us
                connection.send(Reply(call_id, status))

    def _answer_now(self, connection: Connection, call_id: int, body: Any) -> bool:
        """Answer a call on the reader thread; False when the connection has gone."""
        reply = Reply(call_id)
        if isinstance(body, Ping):
            reply.value = os.getpid()
        elif isinstance(body, Status):
            reply.value = self._counters.status(self.data_connections)
        elif not connection.owner:
            reply.error = MLPackError(
                f"{type(body).__name__} comes only from the worker's owner, not a data connection"
            )
        else:
            try:
                reply.value = self.listen(body.path, body.max_connections)
            except OSError as error:
                reply.error = MLPackError(f"cannot listen on {body.path}: {error}")
        try:
            connection.send(reply)
        except OSError:
            if connection.owner:
                self.inbox.put((connection, Stop()))
            return False
        return True

    def listen(self, path: str, max_connections: int = MAX_DATA_CONNECTIONS) -> str:
        """Accept data connections on a Unix socket at ``path``, at most ``max_connections``
        open at once (once; later calls: no-op)."""
        with self._lock:
            if self._listener is not None:
                return self.path or path
            self.max_connections = max(1, max_connections)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                listener.bind(path)
                os.chmod(path, 0o600)
                listener.listen(self.max_connections)
            except BaseException:
                listener.close()
                raise
            self._listener, self.path = listener, path
        threading.Thread(
            target=self._accept, args=(listener,), name="mlpack-worker-accept", daemon=True
        ).start()
        return path

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return  # closed: the worker is stopping
            if self.data_connections >= self.max_connections:
                logger.warning(
                    "refused a data connection: %d are open (its owner's bound)",
                    self.max_connections,
                )
                sock.close()
                continue
            self.serve(sock, owner=False)

    def _drop(self, connection: Connection) -> None:
        """A data connection ended: close it and stop the streams it had open."""
        with self._lock:
            self._data.discard(connection)
        connection.close()
        connection.streams.cancel_all()

    def close(self) -> None:
        """Stop listening (removing the socket file) and close every data connection."""
        with self._lock:
            listener, self._listener = self._listener, None
            data, self._data = list(self._data), set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
            if self.path:
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
        for connection in data:
            connection.close()
