"""A lean asyncio HTTP/1.1 keep-alive connection pool (httptools parser, TCP_NODELAY).

Batch jobs send thousands of small requests; a general-purpose client spends milliseconds of
CPU on each. This pool writes each request in one ``write`` and parses responses with
httptools: tens of microseconds per request. Only what V2 clients need: one host, no
redirects, ``Content-Length`` or chunked responses. ``ConnectionPool.stream`` hands a
response body over chunk by chunk as it arrives (server-sent events), pausing the socket
while the reader is behind, so a fast server cannot fill the client's memory.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httptools

from .errors import Timeout, TransportError

Response = tuple[int, dict[str, str], bytes]

# A streamed body's unread bytes above which the socket stops being read.
STREAM_HIGH_WATER = 256 * 1024


class _BodyStream:
    """The chunks of one streamed response body, read at the reader's pace."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self.done = False
        self.error: Exception | None = None

    def push(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._size += len(chunk)
        if self._size > STREAM_HIGH_WATER and not self._paused:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def finish(self, error: Exception | None = None) -> None:
        if not self.done:
            self.done, self.error = True, error
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read(self, timeout: float) -> bytes:
        """The next chunk; ``b""`` once the body is complete."""
        while not self._chunks:
            if self.done:
                if self.error is not None:
                    raise self.error
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):
                    await self._waiter
            except TimeoutError:
                raise Timeout(f"no streamed data in {timeout:g}s") from None
        chunk = self._chunks.popleft()
        self._size -= len(chunk)
        if self._paused and self._size <= STREAM_HIGH_WATER // 4:
            self._paused = False
            self._transport.resume_reading()
        return chunk


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Response] | None = None
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.closed = False
        self.received = False
        self.stream: _BodyStream | None = None  # set while a response is streamed

    # -- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports are no asyncio.Transport subclasses.
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(TransportError(f"malformed HTTP response: {error}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        error = TransportError(f"connection closed by the server{f': {exc}' if exc else ''}")
        self._fail(error)
        if self.stream is not None:
            self.stream.finish(error)

    # -- httptools callbacks ----------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        if self.stream is not None:  # a streamed answer is handed over once its head is in
            waiter, self.waiter = self.waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_result((self.parser.get_status_code(), self.headers, b""))

    def on_body(self, body: bytes) -> None:
        if self.stream is not None:
            self.stream.push(body)
        else:
            self.body.append(body)

    def on_message_complete(self) -> None:
        if self.stream is not None:
            self.stream.finish()
        if not self.parser.should_keep_alive():
            self.close()
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self.parser.get_status_code(), self.headers, b"".join(self.body)))

    # -- use ------------------------------------------------------------------------------------
    def _fail(self, error: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def send(self, data: bytes, stream: bool = False) -> asyncio.Future[Response]:
        """Write a request; the future gets the whole answer (with ``stream``: its head)."""
        assert self.transport is not None
        self.headers, self.body, self.received = {}, [], False
        self.stream = _BodyStream(self.transport) if stream else None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class StreamedResponse:
    """A response whose body is read as it arrives (``ConnectionPool.stream``)."""

    def __init__(
        self, status: int, headers: dict[str, str], body: _BodyStream, timeout: float
    ) -> None:
        self.status = status
        self.headers = headers
        self._body = body
        self._timeout = timeout

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body's chunks as they come; a gap longer than the timeout raises ``Timeout``."""
        while chunk := await self._body.read(self._timeout):
            yield chunk

    async def aread(self, limit: int) -> bytes:
        """The body up to ``limit`` bytes (error answers); reading stops there."""
        parts: list[bytes] = []
        size = 0
        async for chunk in self.aiter_bytes():
            parts.append(chunk[: limit - size])
            size += len(chunk)
            if size >= limit:
                break
        return b"".join(parts)


class ConnectionPool:
    """Keep-alive connections to one ``http(s)://host:port``; at most ``max_connections`` open."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        max_connections: int = 100,
        verify: bool | ssl.SSLContext = True,
    ) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = None
        if parts.scheme == "https" and isinstance(verify, ssl.SSLContext):
            self.ssl = verify
        elif parts.scheme == "https":
            self.ssl = ssl.create_default_context()
            if not verify:
                self.ssl.check_hostname = False
                self.ssl.verify_mode = ssl.CERT_NONE
        self.host_header = f"{self.host}:{self.port}".encode()
        self.timeout = timeout
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(max_connections)
        self._label = url

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                _, connection = await loop.create_connection(
                    _Connection, self.host, self.port, ssl=self.ssl
                )
        except TimeoutError:
            raise Timeout(f"{self._label}: connect timed out") from None
        except OSError as error:
            raise TransportError(f"{self._label}: {error.strerror or error}") from None
        return connection

    def _encode(self, method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
        lines = [
            f"{method} {path} HTTP/1.1".encode(),
            b"Host: " + self.host_header,
            b"Content-Length: " + str(len(body)).encode(),
        ]
        lines.extend(f"{name}: {value}".encode("latin-1") for name, value in headers.items())
        return b"\r\n".join(lines) + b"\r\n\r\n" + body

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> Response:
        """Send one request; returns (status, lower-cased headers, body)."""
        data = self._encode(method, path, headers, body)
        async with self._slots:
            while self._idle:
                connection = self._idle.pop()
                if connection.closed:
                    continue
                try:
                    return await self._exchange(connection, data)
                except TransportError as error:
                    if isinstance(error, Timeout) or connection.received:
                        raise
                    # A kept-alive connection the server had already closed: use a fresh one.
            return await self._exchange(await self._connect(), data)

    @contextlib.asynccontextmanager
    async def stream(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> AsyncIterator[StreamedResponse]:
        """Send one request; yield its status and headers with the body to read as it comes.

        The connection goes back to the pool only if the body was read to its end; a stream
        left early closes its connection (which tells the server the reader is gone).
        """
        data = self._encode(method, path, headers, body)
        async with self._slots:
            connection: _Connection | None = None
            head: Response | None = None
            while self._idle and head is None:
                connection = self._idle.pop()
                if connection.closed:
                    continue
                try:
                    head = await self._exchange(connection, data, stream=True)
                except TransportError as error:
                    if isinstance(error, Timeout) or connection.received:
                        raise
            if head is None:
                connection = await self._connect()
                head = await self._exchange(connection, data, stream=True)
            assert connection is not None and connection.stream is not None
            response = StreamedResponse(head[0], head[1], connection.stream, self.timeout)
            try:
                yield response
            finally:
                if connection.stream.done and connection.stream.error is None:
                    if not connection.closed:
                        self._idle.append(connection)
                else:
                    connection.close()
                connection.stream = None

    async def _exchange(
        self, connection: _Connection, data: bytes, stream: bool = False
    ) -> Response:
        try:
            async with asyncio.timeout(self.timeout):
                response = await connection.send(data, stream)
        except TimeoutError:
            connection.close()
            raise Timeout(f"{self._label}: no answer in {self.timeout:g}s") from None
        except BaseException:
            connection.close()
            raise
        if not connection.closed and not stream:
            self._idle.append(connection)
        return response

    async def aclose(self) -> None:
        for connection in self._idle:
            if self.ssl is not None and connection.transport is not None:
                # A TLS close waits for the peer's close_notify; idle connections need not.
                connection.closed = True
                connection.transport.abort()
            else:
                connection.close()
        self._idle.clear()
        if self.ssl is not None:  # let the aborted sockets finish closing on this loop
            for _ in range(3):
                await asyncio.sleep(0)
