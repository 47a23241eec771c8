"""How the load generator reaches a server: HTTP/1.1 keep-alive and gRPC drivers.

The HTTP/1.1 driver is a hand-rolled keep-alive client on an ``asyncio.Protocol``: the
whole request (head + body) is encoded once up front, and a response is parsed from the
status line and ``Content-Length`` (or chunked framing) only, so the client costs a few %
of a core. The gRPC driver sends pre-serialized ``ModelInferRequest`` bytes over a generic
grpcio channel (no generated stubs needed on the hot path).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

__all__ = ["GRPC_MODEL_INFER", "Connection", "Driver", "GrpcDriver", "HttpDriver"]

Headers = Sequence[tuple[str, str]]

# --------------------------------------------------------------------------- driver seam


class Connection(Protocol):
    """One logical connection with at most one request outstanding."""

    async def send(self, payload: Any) -> str | None:
        """Send one prepared payload; return None on success or a short error description."""

    def close(self) -> None:
        """Release the connection."""


class Driver(Protocol):
    """Turns raw request bodies into prepared payloads and opens connections."""

    def prepare(self, body: bytes, headers: Headers = ()) -> Any:
        """Encode one request body (and its own headers) into what `Connection.send` takes."""

    async def connect(self) -> Connection:
        """Open a new connection."""


# --------------------------------------------------------------------------- HTTP/1.1


class _HttpClientProtocol(asyncio.Protocol):
    """Minimal HTTP/1.1 response reader: status line, Content-Length or chunked body."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self._head_end = -1  # index just past the blank line, once the head is parsed
        self._status = 0
        self._need = -1  # total bytes (head + body) of a Content-Length response
        self._chunked = False
        self._until_close = False
        self._keep_alive = True
        self.closed = False

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self._waiter is not None:
            self._parse()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._until_close and self._head_end >= 0:
            self._finish(len(self._buf), bytes(self._buf[self._head_end :]))
        else:
            waiter.set_exception(ConnectionError(f"connection closed: {exc or 'EOF'}"))

    # request / response
    def request(self, data: bytes) -> asyncio.Future[tuple[int, bytes, bool]]:
        assert self._transport is not None
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        self._transport.write(data)
        if self._buf:
            self._parse()
        return self._waiter

    def _parse(self) -> None:
        buf = self._buf
        if self._head_end < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).lower()
            try:
                self._status = int(head[9:12])
            except ValueError:
                self._fail(f"bad status line: {bytes(buf[:40])!r}")
                return
            self._head_end = end + 4
            self._keep_alive = b"\r\nconnection: close" not in head
            pos = head.find(b"\r\ncontent-length:")
            if pos >= 0:
                eol = head.find(b"\r\n", pos + 17)
                length = int(head[pos + 17 : eol if eol >= 0 else len(head)])
                self._need = self._head_end + length
            elif b"\r\ntransfer-encoding: chunked" in head:
                self._chunked = True
            elif self._status in (204, 304) or 100 <= self._status < 200:
                self._need = self._head_end
            else:
                self._until_close = True
                self._keep_alive = False
                return
        if self._need >= 0:
            if len(buf) >= self._need:
                ok = 200 <= self._status < 300
                body = b"" if ok else bytes(buf[self._head_end : self._need])
                self._finish(self._need, body)
        elif self._chunked:
            self._parse_chunked()

    def _parse_chunked(self) -> None:
        buf = self._buf
        pos = self._head_end
        body = bytearray()
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return
            size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
            start = eol + 2
            if size == 0:
                # Skip (empty) trailers: we need the final blank line.
                end = buf.find(b"\r\n\r\n", eol)
                if end < 0:
                    return
                self._finish(end + 4, bytes(body))
                return
            if len(buf) < start + size + 2:
                return
            body += buf[start : start + size]
            pos = start + size + 2

    def _finish(self, consumed: int, body: bytes) -> None:
        del self._buf[:consumed]
        waiter, self._waiter = self._waiter, None
        result = (self._status, body, self._keep_alive)
        self._head_end = -1
        self._need = -1
        self._chunked = False
        self._until_close = False
        if waiter is not None and not waiter.done():
            waiter.set_result(result)

    def time_out(self) -> None:
        self._fail("request timed out")

    def _fail(self, message: str) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError(message))
        if self._transport is not None:
            self._transport.close()


class _HttpConnection:
    def __init__(self, driver: HttpDriver) -> None:
        self._driver = driver
        self._proto: _HttpClientProtocol | None = None

    async def _open(self) -> _HttpClientProtocol:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(
            _HttpClientProtocol, self._driver.host, self._driver.port
        )
        self._proto = proto
        return proto

    async def send(self, payload: bytes) -> str | None:
        proto = self._proto
        if proto is None or proto.closed:
            proto = await self._open()
        waiter = proto.request(payload)
        # A timer handle per request is far cheaper than asyncio.wait_for (a task per request).
        timer = asyncio.get_running_loop().call_later(self._driver.timeout, proto.time_out)
        try:
            status, body, keep_alive = await waiter
        finally:
            timer.cancel()
        if not keep_alive:
            self.close()
        if 200 <= status < 300:
            return None
        return f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}"

    def close(self) -> None:
        if self._proto is not None and self._proto._transport is not None:
            self._proto._transport.close()
        self._proto = None


@dataclasses.dataclass(frozen=True)
class HttpDriver:
    """HTTP/1.1 keep-alive driver: one TCP connection per `Connection`."""

    host: str
    port: int
    path: str
    method: str = "POST"
    content_type: str = "application/json"
    extra_headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 30.0

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> HttpDriver:
        parts = urlsplit(url)
        if parts.scheme != "http":
            raise ValueError(f"only http:// URLs are supported, got {url!r}")
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return cls(parts.hostname or "127.0.0.1", parts.port or 80, path, **kwargs)

    def prepare(self, body: bytes, headers: Headers = ()) -> bytes:
        lines = [
            f"{self.method} {self.path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            *(f"{k}: {v}" for k, v in self.extra_headers),
            *(f"{k}: {v}" for k, v in headers),
        ]
        if body or self.method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Type: {self.content_type}")
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    async def connect(self) -> _HttpConnection:
        conn = _HttpConnection(self)
        await conn._open()
        return conn


# --------------------------------------------------------------------------- gRPC

GRPC_MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"


class _GrpcConnection:
    def __init__(self, channel: Any, method: Any, timeout: float) -> None:
        self._channel = channel
        self._method = method
        self._timeout = timeout

    async def send(self, payload: bytes) -> str | None:
        import grpc

        try:
            await self._method(payload, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            return f"gRPC {exc.code().name}: {(exc.details() or '')[:200]}"
        return None

    def close(self) -> None:
        # grpc.aio channels close asynchronously; schedule it on the running loop.
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().create_task(self._channel.close())


@dataclasses.dataclass(frozen=True)
class GrpcDriver:
    """gRPC driver sending pre-serialized protobuf bytes; one channel (TCP connection) each."""

    target: str
    method: str = GRPC_MODEL_INFER
    timeout: float = 30.0
    max_message_length: int = 64 * 1024 * 1024

    def prepare(self, body: bytes, headers: Headers = ()) -> bytes:
        return body

    async def connect(self) -> _GrpcConnection:
        import grpc

        options = [
            # A local subchannel pool keeps channels from sharing one TCP connection.
            ("grpc.use_local_subchannel_pool", 1),
            ("grpc.max_send_message_length", self.max_message_length),
            ("grpc.max_receive_message_length", self.max_message_length),
        ]
        channel = grpc.aio.insecure_channel(self.target, options=options)
        try:
            await asyncio.wait_for(channel.channel_ready(), self.timeout)
        except TimeoutError:
            await channel.close()
            raise ConnectionError(
                f"gRPC {self.target}: not reachable in {self.timeout:g} s"
            ) from None
        # No (de)serializers: requests and responses pass through as raw bytes.
        method = channel.unary_unary(self.method)
        return _GrpcConnection(channel, method, self.timeout)
