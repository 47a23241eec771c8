"""``inline_predict``: a light plain-function ``predict`` runs on the serving loop itself.

Which thread ran ``predict`` is recorded by the model; slowness is simulated by a setting
the test controls (``inline_predict_max_ms``), never judged by elapsed time.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, ClassVar

import pytest

from mlpack import MLModel
from mlpack.engine import deadlines
from mlpack.engine.runner import LocalRunner
from mlpack.errors import DeadlineExceeded, ModelError, Overloaded
from mlpack.settings import ModelSettings
from mlpack.types import InferenceRequest, InferenceResponse

GATE_WAIT = 30  # a safety net for a broken build, never an assertion


class ThreadModel(MLModel):
    """Answers with the name of the thread that ran ``predict``; input -1 fails, and a
    gate the test holds can block input 0."""

    gate: ClassVar[threading.Event | None] = None
    calls: ClassVar[int] = 0

    def predict(self, payload: InferenceRequest) -> InferenceResponse:  # type: ignore[override]
        ThreadModel.calls += 1
        value = int(payload.inputs[0].data[0])  # type: ignore[index, arg-type]
        if value == -1:
            raise ValueError("bad input")
        gate = ThreadModel.gate
        if value == 0 and gate is not None:
            assert gate.wait(GATE_WAIT)
        return InferenceResponse(
            model_name=self.name, outputs=[], id=threading.current_thread().name
        )


class AsyncThreadModel(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:  # type: ignore[override]
        return InferenceResponse(
            model_name=self.name, outputs=[], id=threading.current_thread().name
        )


def _wrapped(function: Any) -> Any:
    def plain(*args: Any) -> Any:  # a plain wrapper returning a coroutine
        return function(*args)

    return plain


class WrappedAsyncModel(AsyncThreadModel):
    predict = _wrapped(AsyncThreadModel.predict)  # type: ignore[assignment]


def request(value: int = 1) -> InferenceRequest:
    return InferenceRequest(
        inputs=[{"name": "x", "shape": [1], "datatype": "INT64", "data": [value]}]
    )


async def _runner(model: str = "ThreadModel", **settings: Any) -> LocalRunner:
    ThreadModel.gate = None
    ThreadModel.calls = 0
    runner = LocalRunner(ModelSettings(name="m", implementation=f"{__name__}.{model}", **settings))
    await runner.load()
    return runner


@pytest.fixture
async def runners() -> Any:
    made: list[LocalRunner] = []

    async def make(model: str = "ThreadModel", **settings: Any) -> LocalRunner:
        runner = await _runner(model, **settings)
        made.append(runner)
        return runner

    yield make
    if ThreadModel.gate is not None:
        ThreadModel.gate.set()
    for runner in made:
        await runner.unload()


async def test_auto_measures_on_the_model_thread_then_runs_inline(runners: Any) -> None:
    runner = await runners(inline_predict="auto", inline_predict_max_ms=1000)
    first = await runner.predict(request())
    assert first.id == "mlpack-model-m"  # nothing measured yet: the model thread
    second = await runner.predict(request())
    assert second.id == threading.current_thread().name  # the serving loop's own thread
    assert runner.inline_calls == 1


async def test_auto_keeps_a_slow_predict_on_the_model_thread(runners: Any) -> None:
    # Any real compute is above a bound of a millionth of a millisecond.
    runner = await runners(inline_predict="auto", inline_predict_max_ms=0.000001)
    for _ in range(3):
        response = await runner.predict(request())
        assert response.id == "mlpack-model-m"
    assert runner.inline_calls == 0


async def test_never_always_uses_the_model_thread(runners: Any) -> None:
    runner = await runners(inline_predict="never", inline_predict_max_ms=1000)
    for _ in range(3):
        assert (await runner.predict(request())).id == "mlpack-model-m"
    assert runner.inline_calls == 0


async def test_always_runs_the_first_call_inline(runners: Any) -> None:
    runner = await runners(inline_predict="always")
    assert (await runner.predict(request())).id == threading.current_thread().name
    assert runner.inline_calls == 1


async def test_async_predict_stays_on_the_model_thread(runners: Any) -> None:
    runner = await runners("AsyncThreadModel", inline_predict="always")
    for _ in range(2):
        assert (await runner.predict(request())).id == "mlpack-model-m"
    assert runner.inline_calls == 0


async def test_plain_wrapper_of_async_predict_falls_back_to_the_model_thread(
    runners: Any,
) -> None:
    runner = await runners("WrappedAsyncModel", inline_predict="always")
    for _ in range(2):  # the first discovers the awaitable; the second goes straight there
        assert (await runner.predict(request())).id == "mlpack-model-m"
    assert runner.inline_calls == 0


async def test_inline_refuses_a_passed_deadline_before_predict_starts(runners: Any) -> None:
    runner = await runners(inline_predict="always")
    token = deadlines.set_deadline(time.monotonic() - 1)
    try:
        with pytest.raises(DeadlineExceeded):
            await runner.predict(request())
    finally:
        deadlines.reset_deadline(token)
    assert ThreadModel.calls == 0


async def test_inline_surfaces_model_errors(runners: Any) -> None:
    runner = await runners(inline_predict="always")
    with pytest.raises(ModelError, match="bad input"):
        await runner.predict(request(-1))
    assert runner.inline_calls == 0
    assert (await runner.predict(request())).id == threading.current_thread().name


async def test_busy_model_thread_means_no_inline_and_the_queue_stays_bounded(
    runners: Any,
) -> None:
    runner = await runners(inline_predict="always", max_queue_size=2)
    ThreadModel.gate = threading.Event()
    # Make the first call go to the thread: backlog 0 would run it inline, so hold it there
    # by switching to "never" for that call only.
    runner.settings.inline_predict = "never"
    held = asyncio.ensure_future(runner.predict(request(0)))
    await asyncio.sleep(0)
    runner.settings.inline_predict = "always"
    # While a prediction is queued or running on the model thread, the next one queues
    # behind it (never two predictions at once) and counts against max_queue_size.
    queued = asyncio.ensure_future(runner.predict(request(1)))
    await asyncio.sleep(0)
    assert runner.backlog == 2
    with pytest.raises(Overloaded):
        await runner.predict(request(1))
    ThreadModel.gate.set()
    assert (await asyncio.wait_for(held, GATE_WAIT)).id == "mlpack-model-m"
    assert (await asyncio.wait_for(queued, GATE_WAIT)).id == "mlpack-model-m"
    assert runner.inline_calls == 0
    # Once the thread is idle, calls run inline again.
    assert (await runner.predict(request())).id == threading.current_thread().name
