"""A low-overhead closed-loop load generator for Open Inference Protocol servers.

N connections each keep one request outstanding (closed loop), for a duration or a
request count, cycling round-robin over a list of pre-encoded request bodies.

The HTTP/1.1 driver is a hand-rolled keep-alive client on an ``asyncio.Protocol``: the
whole request (head + body) is encoded once up front, and a response is parsed from the
status line and ``Content-Length`` only, so the client costs a few % of a core. A gRPC
driver sends caller-supplied, pre-serialized ``ModelInferRequest`` bytes over a generic
grpcio channel (no generated stubs needed).

Library use::

    result = await run_load(HttpDriver.from_url(url), [body], concurrency=32, duration=10)

CLI: ``python -m benchmarks.loadgen --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

__all__ = [
    "Connection",
    "Driver",
    "GrpcDriver",
    "HttpDriver",
    "LoadResult",
    "percentile",
    "run_load",
]

MAX_ERROR_SAMPLES = 5


# --------------------------------------------------------------------------- driver seam


class Connection(Protocol):
    """One logical connection with at most one request outstanding."""

    async def send(self, payload: Any) -> str | None:
        """Send one prepared payload; return None on success or a short error description."""

    def close(self) -> None:
        """Release the connection."""


class Driver(Protocol):
    """Turns raw request bodies into prepared payloads and opens connections."""

    def prepare(self, body: bytes) -> Any:
        """Encode one request body into what `Connection.send` takes (once, off the hot path)."""

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

    def prepare(self, body: bytes) -> bytes:
        lines = [
            f"{self.method} {self.path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            *(f"{k}: {v}" for k, v in self.extra_headers),
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
    """gRPC driver sending pre-serialized protobuf bytes; one channel (TCP) per `Connection`."""

    target: str
    method: str = GRPC_MODEL_INFER
    timeout: float = 30.0
    max_message_length: int = 64 * 1024 * 1024

    def prepare(self, body: bytes) -> bytes:
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
        await channel.channel_ready()
        # No (de)serializers: requests and responses pass through as raw bytes.
        method = channel.unary_unary(self.method)
        return _GrpcConnection(channel, method, self.timeout)


# --------------------------------------------------------------------------- the run


@dataclasses.dataclass
class LoadResult:
    """Summary of one load run (latencies in milliseconds)."""

    concurrency: int
    requests: int
    errors: int
    elapsed_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    loadgen_cpu: (
        float  # process CPU seconds / wall seconds over the measured window (1.0 = one core)
    )
    error_samples: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        return (
            f"c={self.concurrency} n={self.requests} err={self.errors} "
            f"{self.rps:,.0f} req/s  p50 {self.p50_ms:.2f} ms  p90 {self.p90_ms:.2f} ms  "
            f"p99 {self.p99_ms:.2f} ms  loadgen CPU {self.loadgen_cpu:.0%}"
        )


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 for an empty sequence)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(pct / 100.0 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


class _Run:
    """Shared state of one run: the ticket counter, the clock and the samples."""

    def __init__(self, payloads: list[Any], total: int | None) -> None:
        self.payloads = payloads
        self.next_payload = itertools.cycle(range(len(payloads))).__next__
        self.total = total
        self.issued = 0
        self.measure_from_ns = sys.maxsize  # requests started before this are warm-up, not measured
        self.deadline = math.inf
        self.latencies_ns: list[int] = []
        self.errors = 0
        self.error_samples: list[str] = []
        self.last_done = 0.0

    def take(self) -> bool:
        if self.total is not None:
            if self.issued >= self.total:
                return False
            self.issued += 1
            return True
        return time.perf_counter() < self.deadline

    def error(self, message: str) -> None:
        self.errors += 1
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(message)


async def _worker(driver: Driver, run: _Run, conn: Connection | None) -> None:
    perf_ns = time.perf_counter_ns
    latencies = run.latencies_ns
    payloads = run.payloads
    try:
        while run.take():
            payload = payloads[run.next_payload()]
            t0 = perf_ns()
            measured = t0 >= run.measure_from_ns
            try:
                if conn is None:
                    conn = await driver.connect()
                err = await conn.send(payload)
            except (OSError, ConnectionError) as exc:
                err = f"{type(exc).__name__}: {exc}"
                if conn is not None:
                    conn.close()
                    conn = None
                if measured:
                    run.error(err)
                await asyncio.sleep(0.01)  # don't spin on a dead server
                continue
            t1 = perf_ns()
            if measured:
                if err is None:
                    latencies.append(t1 - t0)
                else:
                    run.error(err)
                run.last_done = t1 / 1e9
    finally:
        if conn is not None:
            conn.close()


async def run_load(
    driver: Driver,
    bodies: Sequence[bytes],
    *,
    concurrency: int = 1,
    duration: float | None = 10.0,
    requests: int | None = None,
    warmup: float = 0.0,
) -> LoadResult:
    """Drive `driver` with `concurrency` closed-loop connections and summarise the run.

    Parameters:
        driver: how to reach the server (`HttpDriver`, `GrpcDriver`).
        bodies: request bodies, sent round-robin.
        concurrency: connections, each with one request outstanding.
        duration: measured seconds (ignored when `requests` is given).
        requests: stop after this many requests in total (warm-up excluded when `warmup` is 0).
        warmup: seconds of load before measuring starts (duration mode only).
    """
    if not bodies:
        raise ValueError("need at least one request body")
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    if requests is None and (duration is None or duration <= 0):
        raise ValueError("give a positive duration or a request count")
    payloads = [driver.prepare(b) for b in bodies]
    if requests is not None:
        warmup = 0.0
    run = _Run(payloads, requests)

    # Connect everyone before the clock starts, so connection set-up is not measured.
    conns = await asyncio.gather(*(driver.connect() for _ in range(concurrency)))
    tasks = [asyncio.create_task(_worker(driver, run, c)) for c in conns]
    if warmup > 0:
        await asyncio.sleep(warmup)
    wall0 = time.perf_counter()
    cpu0 = time.process_time()
    run.measure_from_ns = int(wall0 * 1e9)  # same clock as perf_counter_ns
    if requests is None:
        assert duration is not None
        run.deadline = wall0 + duration
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
    wall1 = time.perf_counter()
    cpu1 = time.process_time()

    lat_ms = sorted(ns / 1e6 for ns in run.latencies_ns)
    n_ok = len(lat_ms)
    total = n_ok + run.errors
    end = max(run.last_done, wall0)
    elapsed = max(end - wall0, 1e-9)
    return LoadResult(
        concurrency=concurrency,
        requests=total,
        errors=run.errors,
        elapsed_s=elapsed,
        rps=n_ok / elapsed,
        p50_ms=percentile(lat_ms, 50),
        p90_ms=percentile(lat_ms, 90),
        p99_ms=percentile(lat_ms, 99),
        mean_ms=(sum(lat_ms) / n_ok) if n_ok else 0.0,
        max_ms=lat_ms[-1] if lat_ms else 0.0,
        loadgen_cpu=(cpu1 - cpu0) / max(wall1 - wall0, 1e-9),
        error_samples=run.error_samples,
    )


def install_uvloop() -> bool:
    """Use uvloop for new event loops when available (lower client CPU); return whether it is."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


# --------------------------------------------------------------------------- CLI


def _read_bodies(args: argparse.Namespace) -> list[bytes]:
    bodies: list[bytes] = []
    for text in args.body or []:
        bodies.append(text.encode())
    for path in args.body_file or []:
        bodies.append(Path(path).read_bytes())
    if args.bodies_jsonl:
        for line in Path(args.bodies_jsonl).read_bytes().splitlines():
            if line.strip():
                bodies.append(line.strip())
    return bodies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.loadgen",
        description="Closed-loop load generator for V2 inference servers (HTTP/1.1 or gRPC).",
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="HTTP URL, e.g. http://127.0.0.1:8080/v2/models/iris/infer")
    target.add_argument("--grpc", metavar="HOST:PORT", help="gRPC target (ModelInfer)")
    parser.add_argument("--method", default="POST", help="HTTP method (default POST)")
    parser.add_argument("--body", action="append", help="request body text (repeatable)")
    parser.add_argument("--body-file", action="append", help="file with one body (repeatable)")
    parser.add_argument("--bodies-jsonl", help="file with one JSON body per line (HTTP)")
    parser.add_argument("-c", "--concurrency", type=int, default=1)
    parser.add_argument("-d", "--duration", type=float, default=10.0, help="seconds (default 10)")
    parser.add_argument("-n", "--requests", type=int, help="request count instead of a duration")
    parser.add_argument("-w", "--warmup", type=float, default=0.0, help="warm-up seconds")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout")
    parser.add_argument("--no-uvloop", action="store_true", help="use the default asyncio loop")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)

    bodies = _read_bodies(args)
    driver: Driver
    if args.url:
        driver = HttpDriver.from_url(args.url, method=args.method, timeout=args.timeout)
        if not bodies and args.method == "GET":
            bodies = [b""]
    else:
        driver = GrpcDriver(args.grpc, timeout=args.timeout)
    if not bodies:
        parser.error("give at least one --body, --body-file or --bodies-jsonl")
    if not args.no_uvloop and args.url:
        install_uvloop()
    result = asyncio.run(
        run_load(
            driver,
            bodies,
            concurrency=args.concurrency,
            duration=args.duration,
            requests=args.requests,
            warmup=args.warmup,
        )
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.summary())
        for sample in result.error_samples:
            print(f"  error: {sample}")
    return 0 if result.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
