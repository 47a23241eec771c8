"""Streams through real worker processes (``engine.workers.streams``): order, incrementality,
flow control, cancellation, worker death, many streams at once (judged by files the
models write and by the pool's counters, never by wall-clock time)."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from mlpack.codecs.tensors import validate_inputs
from mlpack.engine.workers.messages import (
    Call,
    FrameDecoder,
    OpenStream,
    StreamChunk,
    StreamCredit,
    StreamInput,
    encode_frame,
    pack_request,
    pack_response,
)
from mlpack.engine.workers.pool import WorkerPool, WorkerRunner
from mlpack.errors import (
    ModelError,
    NoCapacity,
    Overloaded,
    StreamingUnsupported,
    WorkerError,
)
from mlpack.settings import ModelSettings
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput
from tests.helpers.server import ASSETS

SAFETY = 60  # seconds: a net for a broken build, never an assertion
STREAMER = ASSETS / "models" / "streamer"


def request(tag: float, count: int, **parameters: Any) -> InferenceRequest:
    inference = InferenceRequest.model_validate(
        {
            "parameters": {k: v for k, v in parameters.items() if v is not None},
            "inputs": [{"name": "x", "datatype": "FP64", "shape": [2], "data": [tag, count]}],
        }
    )
    validate_inputs(inference.inputs)
    return inference


def streamer(implementation: str = "models.Streamer", **extra: Any) -> ModelSettings:
    settings = ModelSettings.resolve(STREAMER / "model-settings.json")
    name = "streamer" if implementation == "models.Streamer" else "streamer_sync"
    return settings.model_copy(update={"name": name, "implementation": implementation, **extra})


async def one(*requests: InferenceRequest) -> AsyncIterator[InferenceRequest]:
    for item in requests:
        yield item


def pair(response: InferenceResponse) -> tuple[int, int]:
    tag, index = response.outputs[0].data
    return int(tag), int(index)


def recorded(folder: Path, name: str) -> int | None:
    path = folder / name
    return int(path.read_text()) if path.exists() else None


async def drain(stream: AsyncIterator[InferenceResponse]) -> None:
    async with asyncio.timeout(SAFETY):
        async for _ in stream:
            pass


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(SAFETY):
        while not condition():
            await asyncio.sleep(0.01)


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    workers = WorkerPool(2, stop_timeout=5)
    await workers.start()
    try:
        yield workers
    finally:
        await workers.close()


async def loaded(pool: WorkerPool, settings: ModelSettings) -> WorkerRunner:
    runner = WorkerRunner(settings, pool)
    await runner.load()
    return runner


def idle(pool: WorkerPool) -> bool:
    return all(w.in_flight == 0 and not w.streams for w in pool.workers)


# -- messages ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "message",
    [
        Call(3, OpenStream("m#1", 8, 12.5, {"traceparent": "00-x"})),
        StreamInput(3, pack_request(request(1, 2))),
        StreamInput(3, None),
        StreamCredit(3, 4),
        StreamChunk(
            3,
            pack_response(
                InferenceResponse(
                    model_name="m",
                    outputs=[ResponseOutput(name="y", shape=[1], datatype="FP64", data=[1.0])],
                )
            ),
        ),
    ],
)
def test_stream_messages_survive_pickling_and_framing(message: object) -> None:
    assert type(pickle.loads(pickle.dumps(message))) is type(message)
    frame = b"".join(bytes(chunk) for chunk in encode_frame(message))
    decoder = FrameDecoder()
    got = [m for b in frame[:15] for m in decoder.feed(bytes([b]))] + decoder.feed(frame[15:])
    assert got == [message]


# -- streams through the pool --------------------------------------------------------------
@pytest.mark.parametrize("implementation", ["models.Streamer", "models.SyncStreamer"])
async def test_chunks_arrive_in_order_and_before_the_model_produces_the_last(
    pool: WorkerPool, tmp_path: Path, implementation: str
) -> None:
    runner = await loaded(pool, streamer(implementation))
    stream = runner.predict_stream(one(request(7, 5, dir=str(tmp_path), release=True)))
    got = [pair(await stream.__anext__())]
    # The model cannot produce its last response before the gate opens: the first one
    # has crossed the worker socket on its own.
    assert got == [(7, 0)] and recorded(tmp_path, "produced") != 5
    assert sum(w.in_flight for w in pool.workers) == 1  # the stream holds a slot
    (tmp_path / "release").touch()
    got += [pair(r) async for r in stream]
    assert got == [(7, i) for i in range(5)]
    await until(lambda: idle(pool))
    assert recorded(tmp_path, "closed") == 5


async def test_requests_are_forwarded_as_they_come(pool: WorkerPool) -> None:
    """A bidirectional stream: the second request is sent only after the first answer."""
    runner = await loaded(pool, streamer())
    inbox: asyncio.Queue[InferenceRequest | None] = asyncio.Queue()

    async def requests() -> AsyncIterator[InferenceRequest]:
        while (item := await inbox.get()) is not None:
            yield item

    stream = runner.predict_stream(requests())
    await inbox.put(request(1, 2))
    assert [pair(await stream.__anext__()) for _ in range(2)] == [(1, 0), (1, 1)]
    await inbox.put(request(2, 1))
    assert pair(await stream.__anext__()) == (2, 0)
    await inbox.put(None)  # end of input: the model's loop ends, so does the stream
    assert [r async for r in stream] == []
    await until(lambda: idle(pool))


@pytest.mark.parametrize("implementation", ["models.Streamer", "models.SyncStreamer"])
async def test_closing_the_stream_closes_the_models_generator_within_one_chunk(
    pool: WorkerPool, tmp_path: Path, implementation: str
) -> None:
    # The model blocks before its 4th response until the gate opens; the consumer gives
    # up while the model is inside its own code, computing that response.
    runner = await loaded(pool, streamer(implementation, max_stream_buffer=1))
    stream = runner.predict_stream(one(request(1, 4, dir=str(tmp_path), release=True)))
    for _ in range(3):
        await stream.__anext__()
    waiting = asyncio.ensure_future(stream.__anext__())
    await until(lambda: recorded(tmp_path, "waiting") == 3)
    waiting.cancel()  # the client went away (or a deadline passed)
    with pytest.raises(asyncio.CancelledError):
        await waiting
    if implementation == "models.SyncStreamer":
        # A plain generator cannot be interrupted inside its own code: it is closed at
        # its next yield, so it finishes the one response it is computing, no more.
        (tmp_path / "release").touch()
    await until(lambda: recorded(tmp_path, "closed") is not None)
    # The async generator is stopped at its await (its gate never opens); the plain one
    # right after the response it was computing.
    assert recorded(tmp_path, "closed") == (3 if implementation == "models.Streamer" else 4)
    await until(lambda: idle(pool))  # the worker answered the cancel: its slot is free
    after = runner.predict_stream(one(request(2, 2)))
    assert [pair(r) async for r in after] == [(2, 0), (2, 1)]


async def test_an_endless_stream_is_closed_when_its_consumer_leaves(
    pool: WorkerPool, tmp_path: Path
) -> None:
    runner = await loaded(pool, streamer(max_stream_buffer=2))
    stream = runner.predict_stream(one(request(1, 10**9, dir=str(tmp_path))))
    for _ in range(5):
        await stream.__anext__()
    await stream.aclose()  # type: ignore[attr-defined]
    await until(lambda: recorded(tmp_path, "closed") is not None)
    assert 5 <= (recorded(tmp_path, "closed") or 0) <= 5 + 2
    await until(lambda: idle(pool))


@pytest.mark.parametrize("window", [4, 1000])
async def test_a_slow_consumer_holds_the_model_back_to_the_window(
    pool: WorkerPool, tmp_path: Path, window: int
) -> None:
    count = 200
    runner = await loaded(pool, streamer(max_stream_buffer=window))
    stream = runner.predict_stream(one(request(1, count, dir=str(tmp_path))))
    taken = 0
    leads = []
    await stream.__anext__()
    taken += 1
    if window >= count:
        # Control: with room for every response the model runs to the end while the
        # consumer has taken one; the records below would show it.
        await until(lambda: recorded(tmp_path, "produced") == count)
    else:
        await until(lambda: (recorded(tmp_path, "produced") or 0) >= taken + window - 1)
    async for _ in stream:
        leads.append((recorded(tmp_path, "produced") or 0) - taken)
        taken += 1
        await asyncio.sleep(0)  # a consumer that lets the producer run between chunks
    assert taken == count
    if window < count:
        assert max(leads) <= window
    else:
        assert max(leads) > 4


async def test_a_worker_killed_mid_stream_ends_it_with_a_clear_error_and_the_pool_recovers(
    pool: WorkerPool, tmp_path: Path
) -> None:
    runner = await loaded(pool, streamer())
    stream = runner.predict_stream(one(request(1, 3, dir=str(tmp_path), release=True)))
    await stream.__anext__()
    (worker,) = [w for w in pool.workers if w.streams]
    os.kill(worker.process.pid, signal.SIGKILL)
    with pytest.raises(WorkerError, match="exited while serving"):
        await drain(stream)
    for _ in range(1000):  # the other worker serves, or the replacement once it runs
        try:
            after = runner.predict_stream(one(request(2, 2)))
            assert [pair(r) async for r in after] == [(2, 0), (2, 1)]
            break
        except NoCapacity:
            await asyncio.sleep(0.05)
    await until(lambda: len(pool.workers) == 2 and all(w.alive for w in pool.workers))
    assert worker.process.pid not in {w.process.pid for w in pool.workers}


async def test_many_concurrent_streams_each_get_exactly_their_own_chunks(
    pool: WorkerPool,
) -> None:
    runner = await loaded(pool, streamer())

    async def consume(tag: int) -> list[tuple[int, int]]:
        stream = runner.predict_stream(one(request(tag, 4 + tag % 5)))
        return [pair(r) async for r in stream]

    results = await asyncio.gather(*(consume(tag) for tag in range(60)))
    for tag, got in enumerate(results):
        assert got == [(tag, i) for i in range(4 + tag % 5)]
    await until(lambda: idle(pool))
    assert sum(w.served for w in pool.workers) == 60


async def test_model_errors_mid_stream_reach_the_caller_and_the_worker_keeps_serving(
    pool: WorkerPool,
) -> None:
    runner = await loaded(pool, streamer())
    stream = runner.predict_stream(one(request(1, 5, fail_at=2)))
    assert [pair(await stream.__anext__()) for _ in range(2)] == [(1, 0), (1, 1)]
    with pytest.raises(ModelError, match="'streamer' failed while streaming: 'vocabulary'"):
        await stream.__anext__()
    pids = {w.process.pid for w in pool.workers}
    assert [pair(r) async for r in runner.predict_stream(one(request(2, 1)))] == [(2, 0)]
    assert {w.process.pid for w in pool.workers} == pids


async def test_a_model_without_predict_stream_is_refused_naming_it(pool: WorkerPool) -> None:
    runner = await loaded(pool, ModelSettings.resolve(ASSETS / "models/echo/model-settings.json"))
    with pytest.raises(StreamingUnsupported, match="model 'echo' does not implement"):
        await runner.predict_stream(one(request(1, 1))).__anext__()
    await until(lambda: idle(pool))


async def test_a_bad_request_mid_stream_ends_it_and_frees_the_worker(pool: WorkerPool) -> None:
    runner = await loaded(pool, streamer())

    async def requests() -> AsyncIterator[InferenceRequest]:
        yield request(1, 1)
        raise ValueError("request 2 is invalid")

    stream = runner.predict_stream(requests())
    with pytest.raises(ValueError, match="request 2 is invalid"):
        await drain(stream)
    await until(lambda: idle(pool))


async def test_a_stream_held_back_by_its_consumer_is_not_taken_for_a_hung_worker(
    tmp_path: Path,
) -> None:
    pool = WorkerPool(1, stop_timeout=5, ping_interval=0.05, ping_timeout=2.0)
    await pool.start()
    try:
        rounds = 0
        ping = pool._ping

        async def counting_ping(worker: Any) -> bool:
            nonlocal rounds
            answered = await ping(worker)
            rounds += 1
            return answered

        pool._ping = counting_ping  # type: ignore[method-assign]
        runner = await loaded(pool, streamer(max_stream_buffer=1))
        stream = runner.predict_stream(one(request(1, 3, dir=str(tmp_path))))
        await stream.__anext__()
        seen = rounds
        await until(lambda: rounds >= seen + 5)  # pinged while the stream is stalled
        # Still where the window stopped it (no credit granted yet), and never "hung".
        assert recorded(tmp_path, "produced") == 1
        assert pool.hung == 0 and pool.workers[0].alive
        assert [pair(r) async for r in stream] == [(1, 1), (1, 2)]
    finally:
        await pool.close()


async def test_a_stream_holds_its_worker_and_streams_beyond_wait_within_the_queue_bound(
    tmp_path: Path,
) -> None:
    pool = WorkerPool(1, stop_timeout=5, max_queue_size=1)
    await pool.start()
    try:
        runner = await loaded(pool, streamer())
        echo = await loaded(pool, ModelSettings.resolve(ASSETS / "models/echo/model-settings.json"))
        holding = runner.predict_stream(one(request(1, 2, dir=str(tmp_path), release=True)))
        assert pair(await holding.__anext__()) == (1, 0)
        worker = pool.workers[0]
        assert worker.in_flight == 1 and worker.counts[runner.key] == 1
        # The worker is busy with the stream: a second stream waits for it (the queue
        # holds one), a third is refused with 503 at once.
        waiting = asyncio.ensure_future(runner.predict_stream(one(request(2, 1))).__anext__())
        await until(lambda: len(pool.waiting_keys()) == 1)
        with pytest.raises(Overloaded, match="max_queue_size 1"):
            await runner.predict_stream(one(request(3, 1))).__anext__()
        with pytest.raises(Overloaded):  # predictions too: nothing is sent to a streaming worker
            await echo.predict(request(4, 1))
        (tmp_path / "release").touch()
        assert [pair(r) async for r in holding] == [(1, 1)]
        assert pair(await waiting) == (2, 0)
        await until(lambda: idle(pool))
    finally:
        await pool.close()


async def test_predictions_go_to_the_worker_without_a_stream(
    pool: WorkerPool, tmp_path: Path
) -> None:
    runner = await loaded(pool, streamer())
    echo = await loaded(pool, ModelSettings.resolve(ASSETS / "models/echo/model-settings.json"))
    stream = runner.predict_stream(one(request(1, 2, dir=str(tmp_path), release=True)))
    await stream.__anext__()
    (busy,) = [w for w in pool.workers if w.streams]
    served = busy.served
    for value in range(5):  # answered while the stream is held open at its gate
        response = await echo.predict(request(value, 1))
        assert list(response.outputs[0].data) == [value, 1]
    assert busy.served == served  # nothing was queued behind the stream
    (tmp_path / "release").touch()
    assert [pair(r) async for r in stream] == [(1, 1)]


async def test_recycling_waits_for_an_open_stream(tmp_path: Path) -> None:
    pool = WorkerPool(1, stop_timeout=5, max_requests_per_worker=1)
    await pool.start()
    try:
        runner = await loaded(pool, streamer())
        first = pool.workers[0]
        stream = runner.predict_stream(one(request(1, 3, dir=str(tmp_path), release=True)))
        await stream.__anext__()
        assert first.alive and not first.retiring  # recycled only once the stream ends
        (tmp_path / "release").touch()
        assert [pair(r) async for r in stream] == [(1, 1), (1, 2)]
        await until(lambda: pool.recycled == 1 and not first.alive)
        await until(lambda: bool(pool.workers) and pool.workers[0] is not first)
    finally:
        await pool.close()
