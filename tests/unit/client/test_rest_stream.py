"""REST streams in the clients (SSE parsing and HTTP framing) against a tiny SSE test double.

The double is a raw asyncio TCP server writing chunked ``text/event-stream`` answers, so
the client's own HTTP/1.1 pool and httpx both parse real bytes off a socket. What the
real mlpack server streams is tested end to end in tests/e2e/test_stream_clients.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from mlpack.client import AsyncClient, Client, ServerError, TransportError

RESPONSE = {
    "model_name": "m",
    "outputs": [{"name": "y", "shape": [1], "datatype": "INT64", "data": [1]}],
}


async def collect(stream: AsyncIterator[Any], seen: list[Any] | None = None) -> list[Any]:
    seen = [] if seen is None else seen
    async for item in stream:
        seen.append(item)
    return seen


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def event(payload: object) -> bytes:
    return chunk(b"data: " + orjson.dumps(payload) + b"\n\n")


HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
END = b"0\r\n\r\n"

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Double"], Awaitable[None]]


@dataclass
class Double:
    """The test double's record: request heads and bodies, connections, closes seen."""

    script: Script
    requests: list[tuple[bytes, bytes]] = field(default_factory=list)
    connections: int = 0
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Event = field(default_factory=asyncio.Event)  # the client hung up


async def _handle(
    double: Double, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    double.connections += 1
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length)
            double.requests.append((head, body))
            await double.script(reader, writer, double)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        double.closed.set()
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def serve(script: Script) -> AsyncIterator[tuple[str, Double]]:
    double = Double(script)
    server = await asyncio.start_server(lambda r, w: _handle(double, r, w), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}", double
    finally:
        server.close()


async def three_events(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, double: Double
) -> None:
    writer.write(HEAD + event({**RESPONSE, "id": "0"}))
    await writer.drain()
    await double.gate.wait()  # the rest only once the test saw the first
    double.gate.clear()
    writer.write(event({**RESPONSE, "id": "1"}) + event({**RESPONSE, "id": "2"}) + END)


async def test_async_stream_yields_each_event_as_it_arrives() -> None:
    async with serve(three_events) as (url, double), AsyncClient(url) as client:
        ids = []
        async for response in client.infer_stream("m", {"inputs": []}, model_version="2"):
            ids.append(response.id)
            double.gate.set()
        assert ids == ["0", "1", "2"]
        head, body = double.requests[0]
        assert head.startswith(b"POST /v2/models/m/versions/2/infer_stream HTTP/1.1")
        assert b"accept: text/event-stream" in head.lower()
        assert orjson.loads(body) == {"inputs": []}
        # A stream read to its end leaves the connection reusable.
        double.gate.set()
        chunks = [c async for c in client.generate_stream("m", "hi", {"seed": 1})]
        assert [c["id"] for c in chunks] == ["0", "1", "2"]
        assert double.connections == 1
        head, body = double.requests[1]
        assert head.startswith(b"POST /v2/models/m/generate_stream HTTP/1.1")
        assert orjson.loads(body) == {"text_input": "hi", "parameters": {"seed": 1}}


async def one_then_listen(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, double: Double
) -> None:
    writer.write(HEAD + event(RESPONSE))
    await writer.drain()
    assert await reader.read(1) == b""  # nothing more comes from the client: only its close
    double.closed.set()


async def test_leaving_a_stream_early_closes_its_connection() -> None:
    async with serve(one_then_listen) as (url, double), AsyncClient(url) as client:
        stream = client.infer_stream_json("m", {"inputs": []})
        async with contextlib.aclosing(stream):
            async for _ in stream:
                break
        async with asyncio.timeout(30):  # a bound on a hang, not a speed check
            await double.closed.wait()


async def error_mid_stream(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, double: Double
) -> None:
    writer.write(HEAD + event(RESPONSE) + event({"error": "model 'm' failed: boom"}) + END)


async def test_error_event_raises_server_error_after_the_chunks_before_it() -> None:
    async with serve(error_mid_stream) as (url, _), AsyncClient(url) as client:
        seen: list[Any] = []
        with pytest.raises(ServerError, match="model 'm' failed: boom") as caught:
            await collect(client.infer_stream_json("m", {"inputs": []}), seen)
    assert seen == [RESPONSE] and caught.value.reason == "model 'm' failed: boom"


async def refused(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, double: Double
) -> None:
    body = orjson.dumps({"error": "model 'm' does not stream"})
    writer.write(
        b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )


async def test_error_status_before_the_stream_raises_with_the_message() -> None:
    async with serve(refused) as (url, _), AsyncClient(url) as client:
        with pytest.raises(ServerError, match="does not stream") as caught:
            await collect(client.infer_stream("m", {"inputs": []}))
    assert caught.value.status == 400


async def not_a_stream(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, double: Double
) -> None:
    writer.write(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
    )


async def test_an_answer_that_is_not_an_event_stream_is_refused() -> None:
    async with serve(not_a_stream) as (url, _), AsyncClient(url) as client:
        with pytest.raises(TransportError, match="expected text/event-stream"):
            await collect(client.infer_stream("m", {"inputs": []}))


async def huge_event(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, double: Double
) -> None:
    writer.write(HEAD + chunk(b"data: " + b"x" * 5000))
    await double.gate.wait()


async def test_an_event_beyond_the_limit_stops_the_stream() -> None:
    async with serve(huge_event) as (url, double), AsyncClient(url, max_event_size=1024) as client:
        with pytest.raises(TransportError, match="longer than 1024 bytes"):
            await collect(client.infer_stream("m", {"inputs": []}))
        double.gate.set()


async def cut_off(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, double: Double
) -> None:
    writer.write(HEAD + event(RESPONSE))
    await writer.drain()
    writer.close()


async def test_a_stream_cut_off_mid_body_raises_transport_error() -> None:
    async with serve(cut_off) as (url, _), AsyncClient(url) as client:
        seen: list[Any] = []
        with pytest.raises(TransportError, match="connection closed"):
            await collect(client.infer_stream_json("m", {"inputs": []}), seen)
    assert seen == [RESPONSE]


def test_blocking_client_streams_over_httpx() -> None:
    # The blocking client reads through httpx: run the double on a loop in a thread.
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, object] = {}

    async def error_after_two(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, double: Double
    ) -> None:
        writer.write(HEAD + event(RESPONSE))
        await writer.drain()
        await double.gate.wait()
        writer.write(event({"text_output": "b"}) + event({"error": "boom"}) + END)

    async def main() -> None:
        stop = asyncio.Event()
        async with serve(error_after_two) as (url, double):
            state["url"], state["double"], state["stop"] = url, double, stop
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        assert ready.wait(30)
        double = state["double"]
        assert isinstance(double, Double)
        seen: list[Any] = []

        def read(client: Client) -> None:
            for item in client.generate_stream("m", "a"):
                seen.append(item)
                loop.call_soon_threadsafe(double.gate.set)

        with Client(str(state["url"])) as client, pytest.raises(ServerError, match="boom"):
            read(client)
        assert seen == [RESPONSE, {"text_output": "b"}]
    finally:
        stop = state.get("stop")
        if isinstance(stop, asyncio.Event):
            loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()


def test_the_async_client_streams_on_uvloop() -> None:
    # uvloop's transports are not asyncio.Transport subclasses; the pool must not care.
    uvloop = pytest.importorskip("uvloop")

    async def run() -> list[str | None]:
        async with serve(three_events) as (url, double), AsyncClient(url) as client:
            double.gate.set()
            return [r.id async for r in client.infer_stream("m", {"inputs": []})]

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(run()) == ["0", "1", "2"]
