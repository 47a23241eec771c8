"""The streaming benchmark's SSE load generator and model folders (no real servers)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from benchmarks import streaming
from benchmarks.sse_load import run_streams

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def _serve(events: list[bytes]) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                writer.write(HEAD)
                stream = b"".join(events)
                # Event ends split across chunks ("\n" | "\n"): still one event each.
                for i in range(0, len(stream), 7):
                    writer.write(_chunk(stream[i : i + 7]))
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _load(events: list[bytes], expected: int) -> dict[str, object]:
    server, port = await _serve(events)
    try:
        result = await run_streams(f"http://127.0.0.1:{port}/s", b"{}", expected, 2, 0.2)
    finally:
        server.close()
    return result.to_dict()


def test_counts_events_and_times_the_first() -> None:
    events = [b'data: {"i": %d}\n\n' % i for i in range(5)]
    result = asyncio.run(_load(events, 5))
    assert result["errors"] == 0 and result["streams"] > 0
    assert result["chunks"] == 5 * result["streams"]
    assert 0 < result["ttfc_p50_ms"] <= result["stream_p50_ms"]


def test_short_streams_and_error_events_are_errors() -> None:
    short = asyncio.run(_load([b"data: {}\n\n"], 2))
    assert short["streams"] == 0 and short["errors"] > 0
    assert "stream of 1 events, expected 2" in short["error_samples"][0]
    failed = asyncio.run(_load([b"data: {}\n\n", b'data: {"error": "boom"}\n\n'], 2))
    assert failed["streams"] == 0 and "boom" in failed["error_samples"][0]


def test_repositories_serve_the_example_on_both_servers(tmp_path: Path) -> None:
    repositories = streaming.write_repositories(tmp_path)
    mlpack, mlserver = repositories["mlpack"] / "markov", repositories["mlserver"] / "markov"
    assert (mlpack / "markov.py").read_bytes() == (mlserver / "markov.py").read_bytes()
    assert "from mlpack import MLModel" in (mlpack / "models.py").read_text()
    assert "from mlserver import MLModel" in (mlserver / "models.py").read_text()
