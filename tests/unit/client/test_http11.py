"""The keep-alive HTTP/1.1 pool: a cancelled request stays cancelled."""

from __future__ import annotations

import asyncio

import pytest

from mlpack.client._http11 import ConnectionPool, _Connection


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def write(self, data: bytes) -> None:  # type: ignore[override]
        pass

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


async def test_cancel_landing_as_the_answer_arrives_is_not_swallowed() -> None:
    # Python 3.11's asyncio.wait_for returned the result when a cancellation and the answer
    # landed in the same loop turn; `mlpack infer` then hung after Ctrl-C (a worker that
    # missed its cancellation waited forever for more lines).
    pool = ConnectionPool("http://127.0.0.1:9", timeout=5)
    connection = _Connection()
    connection.connection_made(_Transport())
    task = asyncio.create_task(pool._exchange(connection, b"GET / HTTP/1.1\r\n\r\n"))
    await asyncio.sleep(0)  # the request is waiting for its answer
    assert connection.waiter is not None
    connection.waiter.set_result((200, {}, b"{}"))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


class _Pausable(_Transport):
    def __init__(self) -> None:
        super().__init__()
        self.reading = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


async def test_a_streamed_body_pauses_the_socket_while_the_reader_is_behind() -> None:
    from mlpack.client._http11 import STREAM_HIGH_WATER, _BodyStream

    transport = _Pausable()
    body = _BodyStream(transport)
    piece = b"x" * (STREAM_HIGH_WATER // 8)
    for _ in range(8):
        body.push(piece)
    assert transport.reading  # at the mark, not above it
    body.push(piece)
    assert not transport.reading  # above: the socket is no longer read
    for _ in range(6):
        assert await body.read(5) == piece
    assert not transport.reading  # still more than a quarter of the mark unread
    assert await body.read(5) == piece
    assert transport.reading  # drained to a quarter: reading again
    body.finish()
    assert [await body.read(5), await body.read(5), await body.read(5)] == [piece, piece, b""]
