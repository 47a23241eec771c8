"""Driving a model's stream (``engine.streaming``), the bounded hop between loops
(``engine.channel``), ``LocalRunner.predict_stream`` and ``ModelRegistry.infer_stream``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from mlpack import MLModel
from mlpack.engine.channel import ChannelClosed, StreamChannel
from mlpack.engine.registry import ModelRegistry
from mlpack.engine.runner import LocalRunner
from mlpack.engine.streaming import drive_stream, supports_streaming
from mlpack.errors import (
    DeadlineExceeded,
    InvalidRequest,
    ModelError,
    ShuttingDown,
    StreamingUnsupported,
)
from mlpack.settings import ModelSettings
from mlpack.types import InferenceRequest, InferenceResponse

# Set by the models below, read by the tests (one test at a time per process).
EVENTS: list[str] = []
GATES: dict[str, threading.Event] = {}


def _request(count: int = 3, request_id: str | None = "r1") -> InferenceRequest:
    return InferenceRequest(
        id=request_id,
        inputs=[{"name": "count", "shape": [1], "datatype": "INT64", "data": [count]}],
    )


def _chunk(index: int) -> InferenceResponse:
    return InferenceResponse(
        model_name="m",
        outputs=[{"name": "i", "shape": [1], "datatype": "INT64", "data": [index]}],
    )


def _index(response: InferenceResponse) -> int:
    return int(response.outputs[0].data[0])  # type: ignore[index]


async def _one(request: InferenceRequest) -> AsyncIterator[InferenceRequest]:
    yield request


class AsyncCounter(MLModel):
    """Yields ``count`` chunks; waits on GATES["async"] (if set) before the last one."""

    async def predict_stream(
        self, payloads: AsyncIterator[InferenceRequest]
    ) -> AsyncIterator[InferenceResponse]:
        try:
            async for payload in payloads:
                count = int(payload.inputs[0].data[0])  # type: ignore[index]
                for index in range(count):
                    gate = GATES.get("async")
                    if gate is not None and index == count - 1:
                        await asyncio.to_thread(gate.wait, 30)
                    EVENTS.append(f"produced {index}")
                    yield _chunk(index)
        finally:
            EVENTS.append("closed")


class SyncCounter(MLModel):
    """A plain generator: runs on the model's thread."""

    def predict_stream(  # type: ignore[override]
        self, payloads: Iterator[InferenceRequest]
    ) -> Iterator[InferenceResponse]:
        try:
            for payload in payloads:
                for index in range(int(payload.inputs[0].data[0])):  # type: ignore[index]
                    EVENTS.append(f"thread {threading.current_thread().name}")
                    yield _chunk(index)
        finally:
            EVENTS.append("closed")


class Endless(MLModel):
    """Produces until closed; counts what it produced."""

    async def predict_stream(
        self, payloads: AsyncIterator[InferenceRequest]
    ) -> AsyncIterator[InferenceResponse]:
        await payloads.__anext__()
        index = 0
        try:
            while index < 10_000:
                EVENTS.append("produced")
                yield _chunk(index)
                index += 1
        finally:
            EVENTS.append("closed")


class FailsMidway(MLModel):
    async def predict_stream(
        self, payloads: AsyncIterator[InferenceRequest]
    ) -> AsyncIterator[InferenceResponse]:
        yield _chunk(0)
        raise KeyError("vocabulary")


class YieldsWrong(MLModel):
    def predict_stream(self, payloads: Any) -> Iterator[Any]:  # type: ignore[override]
        yield "text"


class NoStream(MLModel):
    pass


def _model(cls: type[MLModel]) -> MLModel:
    return cls(ModelSettings(name=cls.__name__.lower(), implementation="x.Y"))


def _settings(cls: type[MLModel], **extra: Any) -> ModelSettings:
    return ModelSettings(
        name=cls.__name__.lower(), implementation=f"{__name__}.{cls.__name__}", **extra
    )


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    EVENTS.clear()
    GATES.clear()
    yield
    for gate in GATES.values():
        gate.set()


# -- drive_stream ------------------------------------------------------------------------
async def test_async_and_sync_generators_are_driven_alike() -> None:
    for cls in (AsyncCounter, SyncCounter):
        EVENTS.clear()
        got = [_index(r) async for r in drive_stream(_model(cls), _one(_request(3)))]
        assert got == [0, 1, 2]
        assert EVENTS[-1] == "closed"


async def test_a_model_without_predict_stream_is_refused_naming_it() -> None:
    assert not supports_streaming(_model(NoStream))
    assert supports_streaming(_model(SyncCounter))
    with pytest.raises(StreamingUnsupported, match="model 'nostream' does not implement"):
        await drive_stream(_model(NoStream), _one(_request())).__anext__()
    assert StreamingUnsupported.status == 400


async def test_bad_items_and_exceptions_become_model_errors() -> None:
    with pytest.raises(ModelError, match="'yieldswrong': predict_stream\\(\\) yielded str"):
        await drive_stream(_model(YieldsWrong), _one(_request())).__anext__()
    stream = drive_stream(_model(FailsMidway), _one(_request()))
    assert _index(await stream.__anext__()) == 0
    with pytest.raises(ModelError, match="'failsmidway' failed while streaming: 'vocabulary'"):
        await stream.__anext__()


async def test_closing_the_stream_closes_the_models_generator() -> None:
    for cls in (AsyncCounter, SyncCounter):
        EVENTS.clear()
        stream = drive_stream(_model(cls), _one(_request(100)))
        await stream.__anext__()
        await stream.aclose()  # type: ignore[attr-defined]
        assert EVENTS[-1] == "closed"
        assert len([e for e in EVENTS if e != "closed"]) == 1


# -- StreamChannel ----------------------------------------------------------------------
async def test_channel_holds_at_most_capacity_then_the_producer_waits() -> None:
    loop = asyncio.get_running_loop()
    channel: StreamChannel[int] = StreamChannel(2, loop, loop)
    await channel.put(1)
    await channel.put(2)
    third = asyncio.ensure_future(channel.put(3))
    await asyncio.sleep(0)
    assert not third.done() and channel.unread() == 2
    assert await channel.get() == 1
    await third
    assert channel.produced == 3
    channel.finish()
    assert [await channel.get(), await channel.get()] == [2, 3]
    with pytest.raises(StopAsyncIteration):
        await channel.get()


async def test_closing_the_channel_wakes_a_waiting_producer() -> None:
    loop = asyncio.get_running_loop()
    channel: StreamChannel[int] = StreamChannel(1, loop, loop)
    await channel.put(1)
    waiting = asyncio.ensure_future(channel.put(2))
    await asyncio.sleep(0)
    channel.close()
    with pytest.raises(ChannelClosed):
        await waiting


# -- LocalRunner -----------------------------------------------------------------------
async def _runner(cls: type[MLModel], **extra: Any) -> LocalRunner:
    runner = LocalRunner(_settings(cls, **extra))
    await runner.load()
    return runner


async def test_local_runner_streams_from_the_model_thread_incrementally() -> None:
    runner = await _runner(AsyncCounter)
    gate = GATES["async"] = threading.Event()
    try:
        stream = runner.predict_stream(_one(_request(3)))
        first = await stream.__anext__()
        # The first chunk arrived while the model is still held before its last one.
        assert _index(first) == 0 and "produced 2" not in EVENTS
        gate.set()
        rest = [_index(r) async for r in stream]
        assert rest == [1, 2]
    finally:
        await runner.unload()


async def test_local_runner_runs_a_plain_generator_on_the_model_thread() -> None:
    runner = await _runner(SyncCounter)
    try:
        got = [_index(r) async for r in runner.predict_stream(_one(_request(2)))]
        assert got == [0, 1]
        assert EVENTS[:2] == ["thread mlpack-model-synccounter"] * 2
    finally:
        await runner.unload()


async def test_a_slow_consumer_holds_the_producer_to_the_buffer() -> None:
    runner = await _runner(Endless, max_stream_buffer=4)
    try:
        stream = runner.predict_stream(_one(_request()))
        await stream.__anext__()
        # Give the model thread every chance to run ahead: it must stop at the buffer.
        for _ in range(50):
            await asyncio.sleep(0.01)
        produced = EVENTS.count("produced")
        # One consumed + 4 buffered + 1 waiting to be put.
        assert produced <= 1 + 4 + 1, produced
        await stream.aclose()  # type: ignore[attr-defined]
        for _ in range(500):  # the model thread closes its generator
            if "closed" in EVENTS:
                break
            await asyncio.sleep(0.01)
        assert EVENTS[-1] == "closed"
        assert EVENTS.count("produced") == produced
        assert runner.backlog == 0
    finally:
        await runner.unload()


async def test_local_runner_reports_model_failure_mid_stream() -> None:
    runner = await _runner(FailsMidway)
    try:
        stream = runner.predict_stream(_one(_request()))
        assert _index(await stream.__anext__()) == 0
        with pytest.raises(ModelError, match="vocabulary"):
            await stream.__anext__()
    finally:
        await runner.unload()


# -- ModelRegistry.infer_stream -----------------------------------------------------------
async def _registry(cls: type[MLModel], **extra: Any) -> ModelRegistry:
    registry = ModelRegistry()
    await registry.load_version(_settings(cls, **extra))
    return registry


async def test_registry_finishes_each_response_with_name_version_and_id() -> None:
    registry = await _registry(AsyncCounter, parameters={"version": "2"})
    try:
        got = [r async for r in registry.infer_stream("asynccounter", None, _one(_request(2)))]
        assert [(r.model_name, r.model_version, r.id) for r in got] == [
            ("asynccounter", "2", "r1")
        ] * 2
    finally:
        await registry.close()


async def test_a_request_without_id_gets_one_id_for_all_its_responses() -> None:
    registry = await _registry(AsyncCounter)
    try:
        request = _request(3, request_id=None)
        got = [r async for r in registry.infer_stream("asynccounter", None, _one(request))]
        assert len({r.id for r in got}) == 1 and got[0].id
    finally:
        await registry.close()


async def test_streams_bypass_the_batcher() -> None:
    registry = await _registry(AsyncCounter, max_batch_size=4, max_batch_time=0.01)
    try:
        got = [r async for r in registry.infer_stream("asynccounter", None, _one(_request(3)))]
        assert [_index(r) for r in got] == [0, 1, 2]
    finally:
        await registry.close()


async def test_registry_errors_before_the_first_response() -> None:
    registry = await _registry(NoStream)
    await registry.load_version(_settings(AsyncCounter))
    try:
        with pytest.raises(StreamingUnsupported):
            await registry.infer_stream("nostream", None, _one(_request())).__anext__()
        bad = InferenceRequest(inputs=[])
        with pytest.raises(InvalidRequest, match="request has no inputs"):
            await registry.infer_stream("asynccounter", None, _one(bad)).__anext__()
        registry.draining = True
        with pytest.raises(ShuttingDown, match="opens no new streams"):
            await registry.infer_stream("nostream", None, _one(_request())).__anext__()
    finally:
        await registry.close()


async def test_inference_timeout_bounds_the_wait_for_each_response() -> None:
    registry = await _registry(AsyncCounter, inference_timeout=0.2)
    GATES["async"] = threading.Event()  # never set in time: the last chunk never comes
    try:
        stream = registry.infer_stream("asynccounter", None, _one(_request(2)))
        assert _index(await stream.__anext__()) == 0
        with pytest.raises(DeadlineExceeded, match="no next response within inference_timeout"):
            await stream.__anext__()
    finally:
        GATES["async"].set()
        await registry.close()


async def test_observer_hears_about_open_and_finished_streams() -> None:
    seen: list[Any] = []

    class Observer:
        def on_infer(self, event: Any) -> None:
            seen.append(event)

        def on_stream_open(self, name: str, version: str) -> None:
            seen.append(("open", name))

        def on_stream(self, event: Any) -> None:
            seen.append(event)

    registry = await _registry(AsyncCounter)
    registry.observer = Observer()
    try:
        async for _ in registry.infer_stream("asynccounter", None, _one(_request(3))):
            pass
        assert seen[0] == ("open", "asynccounter")
        event = seen[1]
        assert (event.ok, event.chunks) == (True, 3)
        assert event.first_chunk is not None and event.first_chunk <= event.duration
    finally:
        await registry.close()


async def test_a_runner_that_cannot_stream_says_so() -> None:
    from mlpack.engine.runner import stream_on

    class NoStreams:
        settings = _settings(AsyncCounter)

    with pytest.raises(StreamingUnsupported, match=r"its runner \(NoStreams\) cannot stream"):
        stream_on(NoStreams(), _one(_request()))


async def test_local_stream_keeps_the_callers_deadline_set_at_call_time() -> None:
    import time

    from mlpack.engine import deadlines

    runner = await _runner(AsyncCounter)
    try:
        EVENTS.clear()
        token = deadlines.set_deadline(time.monotonic() - 1.0)  # already passed
        try:
            stream = runner.predict_stream(_one(_request(3)))
        finally:
            deadlines.reset_deadline(token)  # as the registry does before iterating
        with pytest.raises(DeadlineExceeded, match="deadline passed before compute"):
            await stream.__anext__()
        assert "produced 0" not in EVENTS  # the model never started
    finally:
        await runner.unload()


async def test_a_waiting_producer_wakes_once_the_channel_is_read_down_to_half() -> None:
    loop = asyncio.get_running_loop()
    channel: StreamChannel[int] = StreamChannel(4, loop, loop)
    for item in range(4):
        await channel.put(item)
    waiting = asyncio.ensure_future(channel.put(4))
    await asyncio.sleep(0)
    assert await channel.get() == 0
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting.done()  # three unread: not yet woken (one wake-up per half buffer)
    assert await channel.get() == 1
    await waiting  # two unread (half of 4): woken
    assert channel.unread() == 3


async def test_the_stall_bound_is_the_models_else_the_servers() -> None:
    registry = await _registry(AsyncCounter)
    try:
        registry.stream_stall_timeout = 7.0
        assert registry.stall_guard("asynccounter", None).limit == 7.0
        registry.stream_stall_timeout = 0.0
        assert registry.stall_guard("asynccounter", None).limit is None  # 0: no bound
    finally:
        await registry.close()
    registry = await _registry(AsyncCounter, stream_stall_timeout=2.5)
    try:
        guard = registry.stall_guard("asynccounter", None)
        assert (guard.model_name, guard.limit) == ("asynccounter", 2.5)
    finally:
        await registry.close()
