"""The model thread releases each answer as soon as it is computed, drops work whose
caller has gone or whose deadline passed, and bounds its queue.

Every test drives a plain-function ``predict`` with gates the test holds, so ordering is
judged by events, never by elapsed time.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, ClassVar

import pytest

from mlpack import MLModel
from mlpack.engine import deadlines
from mlpack.engine.registry import ModelRegistry
from mlpack.engine.runner import LocalRunner
from mlpack.errors import DeadlineExceeded, Overloaded, ShuttingDown
from mlpack.settings import ModelSettings
from mlpack.types import InferenceRequest, InferenceResponse

GATE_WAIT = 30  # a safety net for a broken build, never an assertion


class GatedModel(MLModel):
    """Request ``i`` blocks until the test opens gate ``i``; counts what it computed."""

    gates: ClassVar[dict[int, threading.Event]] = {}
    entered: ClassVar[threading.Event] = threading.Event()  # set when request 0 starts
    computed: ClassVar[list[int]] = []

    def predict(self, payload: InferenceRequest) -> InferenceResponse:  # type: ignore[override]
        index = int(payload.inputs[0].data[0])  # type: ignore[index, arg-type]
        if index == 0:
            GatedModel.entered.set()
        gate = GatedModel.gates.get(index)
        if gate is not None:
            assert gate.wait(GATE_WAIT)
        GatedModel.computed.append(index)
        return InferenceResponse(model_name=self.name, outputs=[], id=str(index))


def request(index: int) -> InferenceRequest:
    return InferenceRequest(
        inputs=[{"name": "x", "shape": [1], "datatype": "INT64", "data": [index]}]
    )


@pytest.fixture
async def runner() -> Any:
    GatedModel.gates = {}
    GatedModel.computed = []
    GatedModel.entered = threading.Event()
    settings = ModelSettings(
        name="gated", implementation=f"{__name__}.GatedModel", max_queue_size=8
    )
    local = LocalRunner(settings)
    await local.load()
    yield local
    for gate in GatedModel.gates.values():
        gate.set()
    await local.unload()


async def test_first_answer_leaves_before_the_backlog_is_computed(runner: LocalRunner) -> None:
    GatedModel.gates = {i: threading.Event() for i in range(5)}
    calls = [asyncio.ensure_future(runner.predict(request(i))) for i in range(5)]
    await asyncio.sleep(0)
    GatedModel.gates[0].set()  # only the first request may finish
    done, _ = await asyncio.wait(calls, timeout=GATE_WAIT, return_when=asyncio.FIRST_COMPLETED)
    assert [c.result().id for c in done] == ["0"]
    # The answer arrived while request 1 was still held: the backlog was not waited for.
    assert GatedModel.computed == [0]
    for index in range(1, 5):
        GatedModel.gates[index].set()
        await asyncio.wait_for(calls[index], GATE_WAIT)
        assert GatedModel.computed == list(range(index + 1))


async def test_abandoned_requests_are_not_computed(runner: LocalRunner) -> None:
    GatedModel.gates = {0: threading.Event()}
    first = asyncio.ensure_future(runner.predict(request(0)))
    others = [asyncio.ensure_future(runner.predict(request(i))) for i in range(1, 6)]
    await asyncio.sleep(0)
    for call in others[:4]:  # four callers leave while request 0 holds the model
        call.cancel()
    await asyncio.gather(*others[:4], return_exceptions=True)
    GatedModel.gates[0].set()
    assert (await asyncio.wait_for(first, GATE_WAIT)).id == "0"
    assert (await asyncio.wait_for(others[4], GATE_WAIT)).id == "5"
    assert GatedModel.computed == [0, 5]
    assert runner.backlog == 0


async def test_expired_work_is_not_started(runner: LocalRunner) -> None:
    GatedModel.gates = {0: threading.Event()}
    first = asyncio.ensure_future(runner.predict(request(0)))
    token = deadlines.set_deadline(time.monotonic())  # already due once the model gets to it
    try:
        late = asyncio.ensure_future(runner.predict(request(1)))
    finally:
        deadlines.reset_deadline(token)
    await asyncio.sleep(0)
    GatedModel.gates[0].set()
    await asyncio.wait_for(first, GATE_WAIT)
    with pytest.raises(DeadlineExceeded, match="deadline passed before compute"):
        await asyncio.wait_for(late, GATE_WAIT)
    assert GatedModel.computed == [0]


async def test_queue_is_bounded(runner: LocalRunner) -> None:
    GatedModel.gates = {0: threading.Event()}
    calls = [asyncio.ensure_future(runner.predict(request(i))) for i in range(8)]
    await asyncio.sleep(0)
    assert runner.backlog == 8
    with pytest.raises(Overloaded, match="max_queue_size 8") as raised:
        await runner.predict(request(99))
    assert raised.value.retry_after and raised.value.status == 503
    GatedModel.gates[0].set()
    await asyncio.wait_for(asyncio.gather(*calls), GATE_WAIT)
    assert 99 not in GatedModel.computed and runner.backlog == 0


async def test_shutdown_hard_limit_answers_running_and_queued_work_with_503() -> None:
    GatedModel.gates = {0: threading.Event(), 1: threading.Event()}
    GatedModel.computed = []
    GatedModel.entered = threading.Event()
    registry = ModelRegistry()
    settings = ModelSettings(name="gated", implementation=f"{__name__}.GatedModel")
    await registry.load_all([settings])
    try:
        running = asyncio.ensure_future(registry.infer("gated", None, request(0)))
        queued = asyncio.ensure_future(registry.infer("gated", None, request(1)))
        assert await asyncio.to_thread(GatedModel.entered.wait, GATE_WAIT)
        assert registry.abort_in_flight() == 2
        for call in (running, queued):
            with pytest.raises(ShuttingDown) as raised:
                await asyncio.wait_for(call, GATE_WAIT)
            assert raised.value.status == 503
        GatedModel.gates[0].set()
        GatedModel.gates[1].set()
    finally:
        await registry.close()
    assert GatedModel.computed in ([], [0])  # request 1 never started
