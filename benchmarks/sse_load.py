"""A cheap closed-loop load generator for server-sent event streams (``infer_stream``).

Each connection sends one streaming request, reads its ``text/event-stream`` answer to the
end, and sends the next, until the duration is over. Responses are parsed with httptools
(status, chunked framing) and events are counted by their blank-line ends without decoding
the JSON, so the client costs little next to the servers. Per stream it records the time
to the first complete event (time to first chunk) and the number of events.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any
from urllib.parse import urlsplit

import httptools

from benchmarks.loadgen import percentile

MAX_ERROR_SAMPLES = 5


@dataclasses.dataclass
class StreamResult:
    """One load run (times in milliseconds)."""

    concurrency: int
    streams: int
    errors: int
    chunks: int
    elapsed_s: float
    chunks_per_s: float
    streams_per_s: float
    ttfc_p50_ms: float
    ttfc_p99_ms: float
    stream_p50_ms: float
    loadgen_cpu: float
    error_samples: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class _StreamProtocol(asyncio.Protocol):
    """One keep-alive connection reading one event stream at a time."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[None] | None = None
        self.sent_ns = self.first_ns = 0
        self.events = 0
        self.status = 0
        self.tail = b""
        self.error_body = b""
        self.keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport

    def send(self, data: bytes) -> asyncio.Future[None]:
        assert self.transport is not None
        self.events, self.first_ns, self.tail, self.error_body = 0, 0, b"", b""
        self.done = asyncio.get_running_loop().create_future()
        self.sent_ns = time.perf_counter_ns()
        self.transport.write(data)
        return self.done

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(ConnectionError(f"bad HTTP: {error}"))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if self.status != 200:
            self.error_body = (self.error_body + body)[:300]
            return
        ends = (self.tail[-1:] + body).count(b"\n\n")
        if ends:
            if not self.first_ns:
                self.first_ns = time.perf_counter_ns()
            self.events += ends
        if self.error_body:
            self.error_body = (self.error_body + body)[:300]
        elif b'{"error"' in self.tail + body:  # an error event (the tail: split across reads)
            self.error_body = (self.tail + body)[:300]
        self.tail = body[-8:]

    def on_message_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()
        done, self.done = self.done, None
        if done is not None and not done.done():
            done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.keep_alive = False
        self._fail(ConnectionError(f"connection closed: {exc or 'EOF'}"))

    def _fail(self, error: Exception) -> None:
        done, self.done = self.done, None
        if done is not None and not done.done():
            done.set_exception(error)
        if self.transport is not None:
            self.transport.close()


def request_bytes(url: str, body: bytes) -> bytes:
    """The whole HTTP/1.1 request for ``url`` with a JSON ``body``, encoded once."""
    parts = urlsplit(url)
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        "Content-Type: application/json\r\nAccept: text/event-stream\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class _Run:
    def __init__(self, deadline: float, expected: int) -> None:
        self.deadline = deadline
        self.expected = expected
        self.ttfc_ns: list[int] = []
        self.stream_ns: list[int] = []
        self.chunks = 0
        self.errors = 0
        self.samples: list[str] = []
        self.last_done = 0.0

    def error(self, message: str) -> None:
        self.errors += 1
        if len(self.samples) < MAX_ERROR_SAMPLES:
            self.samples.append(message)


async def _connect(host: str, port: int) -> _StreamProtocol:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(_StreamProtocol, host, port)
    return protocol


async def _worker(host: str, port: int, data: bytes, run: _Run, timeout: float) -> None:
    protocol: _StreamProtocol | None = None
    try:
        while time.perf_counter() < run.deadline:
            if protocol is None or not protocol.keep_alive:
                if protocol is not None and protocol.transport is not None:
                    protocol.transport.close()
                protocol = await _connect(host, port)
            try:
                async with asyncio.timeout(timeout):
                    await protocol.send(data)
            except (ConnectionError, TimeoutError) as error:
                run.error(f"{type(error).__name__}: {error}")
                protocol = None
                await asyncio.sleep(0.01)
                continue
            end = time.perf_counter_ns()
            run.last_done = end / 1e9
            if protocol.status != 200 or protocol.error_body:
                run.error(f"HTTP {protocol.status}: {protocol.error_body[:200]!r}")
            elif protocol.events != run.expected:
                run.error(f"stream of {protocol.events} events, expected {run.expected}")
            else:
                run.ttfc_ns.append(protocol.first_ns - protocol.sent_ns)
                run.stream_ns.append(end - protocol.sent_ns)
                run.chunks += protocol.events
    finally:
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()


async def run_streams(
    url: str,
    body: bytes,
    expected_chunks: int,
    concurrency: int,
    duration: float,
    timeout: float = 60.0,
) -> StreamResult:
    """``concurrency`` connections streaming ``body`` to ``url`` back to back for ``duration``."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    data = request_bytes(url, body)
    wall0 = time.perf_counter()
    cpu0 = time.process_time()
    run = _Run(wall0 + duration, expected_chunks)
    await asyncio.gather(*(_worker(host, port, data, run, timeout) for _ in range(concurrency)))
    wall1 = time.perf_counter()
    elapsed = max(run.last_done - wall0, 1e-9)
    ttfc = sorted(ns / 1e6 for ns in run.ttfc_ns)
    streams = sorted(ns / 1e6 for ns in run.stream_ns)
    return StreamResult(
        concurrency=concurrency,
        streams=len(streams),
        errors=run.errors,
        chunks=run.chunks,
        elapsed_s=elapsed,
        chunks_per_s=run.chunks / elapsed,
        streams_per_s=len(streams) / elapsed,
        ttfc_p50_ms=percentile(ttfc, 50),
        ttfc_p99_ms=percentile(ttfc, 99),
        stream_p50_ms=percentile(streams, 50),
        loadgen_cpu=(time.process_time() - cpu0) / max(wall1 - wall0, 1e-9),
        error_samples=run.samples,
    )
