"""A lean asyncio HTTP/1.1 keep-alive connection pool (httptools parser, TCP_NODELAY).

Batch jobs send thousands of small requests; a general-purpose client spends milliseconds of
CPU on each. This pool writes each request in one ``write`` and parses responses with
httptools: tens of microseconds per request. Only what V2 clients need: one host, no
redirects, ``Content-Length`` or chunked responses.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from urllib.parse import urlsplit

import httptools

from .errors import Timeout, TransportError

Response = tuple[int, dict[str, str], bytes]


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Response] | None = None
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.closed = False
        self.received = False

    # -- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
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
        self._fail(TransportError(f"connection closed by the server{f': {exc}' if exc else ''}"))

    # -- httptools callbacks ----------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
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

    def send(self, data: bytes) -> asyncio.Future[Response]:
        assert self.transport is not None
        self.headers, self.body, self.received = {}, [], False
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


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

    async def _exchange(self, connection: _Connection, data: bytes) -> Response:
        try:
            async with asyncio.timeout(self.timeout):
                response = await connection.send(data)
        except TimeoutError:
            connection.close()
            raise Timeout(f"{self._label}: no answer in {self.timeout:g}s") from None
        except BaseException:
            connection.close()
            raise
        if not connection.closed:
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
