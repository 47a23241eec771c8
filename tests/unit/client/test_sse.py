"""The server-sent event decoder: WHATWG framing, any chunking, bounded buffers."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlpack.client.errors import TransportError
from mlpack.client.sse import ServerSentEvent, SSEDecoder

STREAM = (
    b"\xef\xbb\xbf: keep-alive comment\r\n"
    b"data: first\r\n\r\n"
    b"event: update\nid: 7\nretry: 1500\ndata:two\ndata:  lines\n\n"
    b'data\r\rdata: {"x": 1}\n'
    b"unknown: field\n\n"
    b"id: 8\n\n"  # no data: nothing dispatched, but the id is kept
    b"data: after id\n\n"
    b"data: unfinished"
)
EXPECTED = [
    ServerSentEvent("first"),
    ServerSentEvent("two\n lines", "update", "7", 1500),
    ServerSentEvent("", "message", "7"),
    ServerSentEvent('{"x": 1}', "message", "7"),
    ServerSentEvent("after id", "message", "8"),
]


def decode(parts: list[bytes], limit: int = 1 << 20) -> list[ServerSentEvent]:
    decoder = SSEDecoder(limit)
    events = [event for part in parts for event in decoder.feed(part)]
    decoder.close()
    return events


def test_whole_stream() -> None:
    assert decode([STREAM]) == EXPECTED


def test_byte_by_byte() -> None:
    assert decode([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_split_gives_the_same_events(cuts: list[int]) -> None:
    points = [0, *sorted(cuts), len(STREAM)]
    assert decode([STREAM[a:b] for a, b in itertools.pairwise(points)]) == EXPECTED


def test_an_event_is_handed_over_at_its_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.feed(b"\n") == [ServerSentEvent("a")]
    # CR line ends: the event is complete at the second CR, without waiting for more bytes.
    assert decoder.feed(b"data: b\r\r") == [ServerSentEvent("b")]
    assert decoder.feed(b"\ndata: c\r\n\r\n") == [ServerSentEvent("c")]


def test_a_line_beyond_the_limit_raises() -> None:
    decoder = SSEDecoder(max_event_size=64)
    decoder.feed(b"data: " + b"x" * 50)
    with pytest.raises(TransportError, match="line longer than 64 bytes"):
        decoder.feed(b"x" * 50)


def test_an_event_beyond_the_limit_raises() -> None:
    decoder = SSEDecoder(max_event_size=64)
    decoder.feed(b"data: " + b"y" * 20 + b"\n" + b"data: " + b"y" * 20 + b"\n")
    with pytest.raises(TransportError, match="event larger than 64 bytes"):
        decoder.feed(b"data: " + b"y" * 30 + b"\n")


def test_utf8_split_across_chunks() -> None:
    data = "data: héllo ✓\n\n".encode()
    assert decode([data[:8], data[8:14], data[14:]]) == [ServerSentEvent("héllo ✓")]


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_event_size"):
        SSEDecoder(0)
