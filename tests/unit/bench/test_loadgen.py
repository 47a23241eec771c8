"""The load generator against a tiny asyncio HTTP/1.1 server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Awaitable, Callable

import pytest

from benchmarks.loadgen import main
from mlpack.bench.loadgen import Body, HttpDriver, LoadResult, percentile, run_load

Handler = Callable[[int, bytes], Awaitable[bytes]]


def _response(status: int, body: bytes, extra: str = "") -> bytes:
    reason = {200: "OK", 503: "Service Unavailable"}.get(status, "X")
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


class _Server:
    """Counts requests and answers each through `handler(count, body)`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.count = 0
        self.bodies: list[bytes] = []
        self.connections = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                self.count += 1
                self.bodies.append(body)
                reply = await self.handler(self.count, body)
                if not reply:
                    break  # drop the connection without answering
                writer.write(reply)
                await writer.drain()
                if b"Connection: close" in reply.split(b"\r\n\r\n", 1)[0]:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def _with_server(
    handler: Handler, scenario: Callable[[HttpDriver, _Server], Awaitable[LoadResult]]
) -> tuple[LoadResult, _Server]:
    state = _Server(handler)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # a bound socket handed over: no port race
    port = sock.getsockname()[1]
    server = await asyncio.start_server(state.serve, sock=sock)
    try:
        driver = HttpDriver("127.0.0.1", port, "/v2/models/m/infer", timeout=5.0)
        result = await scenario(driver, state)
    finally:
        server.close()
        await server.wait_closed()
    return result, state


async def _ok(count: int, body: bytes) -> bytes:
    return _response(200, b'{"ok":true}')


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 90) == 90.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([], 50) == 0.0
    assert percentile([7.0], 99) == 7.0


def test_request_count_and_round_robin() -> None:
    bodies = [b'{"i":0}', b'{"i":1}', b'{"i":2}']

    async def scenario(driver: HttpDriver, state: _Server) -> LoadResult:
        return await run_load(driver, bodies, concurrency=1, requests=30)

    result, state = asyncio.run(_with_server(_ok, scenario))
    assert result.requests == 30
    assert result.errors == 0
    assert state.count == 30
    assert state.bodies == bodies * 10
    assert state.connections == 1  # keep-alive: one connection for everything
    assert result.rps > 0
    assert 0 < result.p50_ms <= result.p90_ms <= result.p99_ms <= result.max_ms


def test_every_fifth_request_fails() -> None:
    async def handler(count: int, body: bytes) -> bytes:
        if count % 5 == 0:
            return _response(503, b'{"error":"busy"}')
        return _response(200, b"{}")

    async def scenario(driver: HttpDriver, state: _Server) -> LoadResult:
        return await run_load(driver, [b"{}"], concurrency=4, requests=100)

    result, state = asyncio.run(_with_server(handler, scenario))
    assert state.count == 100
    assert result.requests == 100
    assert result.errors == 20
    assert result.error_samples[0] == 'HTTP 503: {"error":"busy"}'
    assert len(result.error_samples) == 5  # capped


def test_percentiles_follow_server_delay() -> None:
    # Every 10th body asks for a 40 ms delay: p50 and p90 stay fast, p99 is slow.
    bodies = [b'{"d":0}'] * 9 + [b'{"d":40}']

    async def handler(count: int, body: bytes) -> bytes:
        delay = json.loads(body)["d"]
        if delay:
            await asyncio.sleep(delay / 1000)
        return _response(200, b"{}")

    async def scenario(driver: HttpDriver, state: _Server) -> LoadResult:
        return await run_load(driver, bodies, concurrency=1, requests=100)

    result, _ = asyncio.run(_with_server(handler, scenario))
    assert result.errors == 0
    assert result.p50_ms < 20
    assert result.p90_ms < 20
    assert result.p99_ms >= 40
    assert result.max_ms >= 40


def test_duration_mode_with_warmup() -> None:
    async def scenario(driver: HttpDriver, state: _Server) -> LoadResult:
        return await run_load(driver, [b"{}"], concurrency=8, duration=0.8, warmup=0.2)

    result, state = asyncio.run(_with_server(_ok, scenario))
    assert result.errors == 0
    assert result.requests > 50
    assert state.count > result.requests  # warm-up requests were sent but not counted
    assert result.elapsed_s >= 0.8  # at least the measured window (a lower bound cannot flake)
    assert result.rps == pytest.approx(result.requests / result.elapsed_s)
    assert 0 <= result.loadgen_cpu <= 2.0


def test_connection_close_and_dropped_connections() -> None:
    async def handler(count: int, body: bytes) -> bytes:
        if count % 10 == 0:
            return b""  # server hangs up without answering
        if count % 3 == 0:
            return _response(200, b"{}", "Connection: close\r\n")
        return _response(200, b"{}")

    async def scenario(driver: HttpDriver, state: _Server) -> LoadResult:
        return await run_load(driver, [b"{}"], concurrency=2, requests=50)

    result, state = asyncio.run(_with_server(handler, scenario))
    assert result.requests == 50
    assert result.errors == 5
    assert "connection closed" in result.error_samples[0]
    assert state.connections > 2  # reconnected after every close


def test_chunked_response() -> None:
    async def handler(count: int, body: bytes) -> bytes:
        status = 200 if count % 2 else 503
        return (
            f"HTTP/1.1 {status} X\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
            + b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n"
        )

    async def scenario(driver: HttpDriver, state: _Server) -> LoadResult:
        return await run_load(driver, [b"{}"], concurrency=1, requests=10)

    result, _ = asyncio.run(_with_server(handler, scenario))
    assert result.requests == 10
    assert result.errors == 5
    assert result.error_samples[0] == "HTTP 503: abcde"


def test_request_timeout_counts_as_error() -> None:
    async def handler(count: int, body: bytes) -> bytes:
        if count == 2:
            await asyncio.sleep(1.0)
        return _response(200, b"{}")

    async def scenario(driver: HttpDriver, state: _Server) -> LoadResult:
        fast = HttpDriver(driver.host, driver.port, driver.path, timeout=0.2)
        return await run_load(fast, [b"{}"], concurrency=1, requests=4)

    result, _ = asyncio.run(_with_server(handler, scenario))
    assert result.requests == 4
    assert result.errors == 1
    assert "timed out" in result.error_samples[0]


def test_cli_reports_json(capsys: pytest.CaptureFixture[str]) -> None:
    # The CLI runs its own event loop, so serve from a thread.
    import threading

    ready = threading.Event()
    stop: list[Callable[[], None]] = []
    port: list[int] = []

    def serve() -> None:
        async def amain() -> None:
            state = _Server(_ok)
            server = await asyncio.start_server(state.serve, "127.0.0.1", 0)
            port.append(server.sockets[0].getsockname()[1])
            done = asyncio.Event()
            loop = asyncio.get_running_loop()
            stop.append(lambda: loop.call_soon_threadsafe(done.set))
            ready.set()
            await done.wait()
            server.close()
            await server.wait_closed()

        asyncio.run(amain())

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        assert ready.wait(5)
        code = main(
            [
                "--url",
                f"http://127.0.0.1:{port[0]}/x",
                "--body",
                "{}",
                "-n",
                "20",
                "-c",
                "2",
                "--json",
                "--no-uvloop",
            ]
        )
    finally:
        if stop:
            stop[0]()
        thread.join(5)
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["requests"] == 20
    assert out["errors"] == 0


def test_rows_and_error_kinds() -> None:
    bodies = [Body(b'{"r":2}', rows=2, headers=(("X-Tag", "two"),)), Body(b'{"r":5}', rows=5)]

    async def handler(count: int, body: bytes) -> bytes:
        return _response(503 if count % 4 == 0 else 200, b"{}")

    async def scenario(driver: HttpDriver, state: _Server) -> LoadResult:
        return await run_load(driver, bodies, concurrency=1, requests=8)

    result, _ = asyncio.run(_with_server(handler, scenario))
    assert result.errors == 2 and result.error_kinds == {"HTTP 503": 2}
    # Requests 4 and 8 (both r=5 bodies) failed: four r=2 and two r=5 bodies succeeded.
    assert result.rows == 4 * 2 + 2 * 5
    assert result.sent == 8 and result.scheduled == 8


def test_open_loop_sends_what_it_scheduled() -> None:
    async def handler(count: int, body: bytes) -> bytes:
        await asyncio.sleep(0.02)  # slower than the interval: needs several connections
        return _response(200, b"{}")

    async def scenario(driver: HttpDriver, state: _Server) -> LoadResult:
        # 32 connections may hold 4 x 32 waiting requests: more than the 100 scheduled, so
        # nothing can be dropped however slowly a busy machine runs the server.
        return await run_load(driver, [b"{}"], concurrency=32, duration=0.5, rate=200)

    result, state = asyncio.run(_with_server(handler, scenario))
    assert result.mode == "open" and result.rate == 200
    assert result.scheduled == 100 and result.sent == 100 and result.requests == 100
    assert result.errors == 0 and state.count == 100
    assert 2 <= state.connections <= 32  # bounded by concurrency
    assert result.p50_ms >= 20  # latency counted from the scheduled time


def test_open_loop_drops_past_its_backlog() -> None:
    release = asyncio.Event()

    async def handler(count: int, body: bytes) -> bytes:
        await release.wait()
        return _response(200, b"{}")

    async def scenario(driver: HttpDriver, state: _Server) -> LoadResult:
        async def free_later() -> None:
            await asyncio.sleep(0.4)
            release.set()

        task = asyncio.create_task(free_later())
        try:
            return await run_load(driver, [b"{}"], concurrency=1, requests=20, rate=1000)
        finally:
            await task

    result, _ = asyncio.run(_with_server(handler, scenario))
    # One connection, at most 4 waiting for it: everything past that is dropped, not queued.
    assert result.scheduled == 20
    assert result.error_kinds.get("dropped", 0) == 20 - result.sent
    assert result.sent <= 1 + 4 and result.requests == 20


def test_bad_arguments() -> None:
    driver = HttpDriver("127.0.0.1", 9, "/x")
    for kwargs in (
        {"rate": 0.0, "requests": 1},
        {"requests": 0},
        {"concurrency": 0, "requests": 1},
    ):
        with pytest.raises(ValueError, match="must be"):
            asyncio.run(run_load(driver, [b"{}"], **kwargs))  # type: ignore[arg-type]
