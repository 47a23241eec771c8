"""AdaptiveBatcher: work-conserving dispatch, merging while busy, overflow, cancellation."""

from __future__ import annotations

import asyncio

import pytest

from mlpack.codecs.tensors import tensor_as_ndarray, validate_inputs
from mlpack.engine.batching import AdaptiveBatcher, ServingInfo
from mlpack.errors import ModelError, Overloaded
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput


def row_request(value: float, rows: int = 1, width: int = 2) -> InferenceRequest:
    request = InferenceRequest.model_validate(
        {
            "id": f"id-{value}",
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [rows, width],
                    "data": [value] * (rows * width),
                }
            ],
        }
    )
    validate_inputs(request.inputs)
    return request


class GatedModel:
    """Records batch sizes; each call waits for the gate when one is set."""

    def __init__(self, wrong_rows: bool = False) -> None:
        self.batches: list[int] = []
        self.gate: asyncio.Event | None = None
        self.wrong_rows = wrong_rows

    async def predict(self, request: InferenceRequest) -> InferenceResponse:
        array = tensor_as_ndarray(request.inputs[0])
        self.batches.append(array.shape[0])
        if self.gate is not None:
            await self.gate.wait()
        out = array.sum(axis=1)
        if self.wrong_rows:
            out = out[:-1]
        return InferenceResponse(
            model_name="m",
            outputs=[ResponseOutput(name="y", shape=[len(out)], datatype="FP32", data=out)],
        )


async def test_lone_request_is_dispatched_without_waiting_the_window() -> None:
    model = GatedModel()
    batcher = AdaptiveBatcher(
        model.predict, max_batch_size=8, max_batch_time=10.0, max_queue_size=10
    )
    response = await asyncio.wait_for(batcher.predict(row_request(1.0)), timeout=1.0)
    assert response.outputs[0].data.tolist() == [2.0]


async def test_requests_arriving_while_busy_are_merged_and_split_in_order() -> None:
    model = GatedModel()
    model.gate = asyncio.Event()
    batcher = AdaptiveBatcher(
        model.predict, max_batch_size=4, max_batch_time=1.0, max_queue_size=10
    )
    first = asyncio.create_task(batcher.predict(row_request(0.0)))
    await asyncio.sleep(0)
    infos = [ServingInfo() for _ in range(5)]
    rest = [
        asyncio.create_task(batcher.predict(row_request(float(v), rows=1 + v % 2), infos[v - 1]))
        for v in range(1, 6)
    ]
    await asyncio.sleep(0.01)
    assert model.batches == [1] and batcher.queued == 5
    model.gate.set()
    results = await asyncio.gather(first, *rest)
    # Rows per request: 2,1,2,1,2; batches never pass 4 rows.
    assert (
        model.batches[0] == 1
        and max(model.batches) <= 4
        and sum(model.batches) == 1 + 2 + 1 + 2 + 1 + 2
    )
    for value, response in zip(range(1, 6), results[1:], strict=True):
        rows = 1 + value % 2
        assert response.outputs[0].shape == [rows]
        assert response.outputs[0].data.tolist() == [2.0 * value] * rows
    assert infos[0].batch_requests >= 2 and infos[0].queue_wait > 0


async def test_queue_overflow_raises_overloaded() -> None:
    model = GatedModel()
    model.gate = asyncio.Event()
    batcher = AdaptiveBatcher(model.predict, max_batch_size=2, max_batch_time=0.0, max_queue_size=2)
    tasks = [asyncio.create_task(batcher.predict(row_request(float(v)))) for v in range(3)]
    await asyncio.sleep(0.01)
    with pytest.raises(Overloaded, match="max_queue_size 2"):
        await batcher.predict(row_request(9.0))
    model.gate.set()
    await asyncio.gather(*tasks)


async def test_cancelled_request_is_dropped_before_compute() -> None:
    model = GatedModel()
    model.gate = asyncio.Event()
    batcher = AdaptiveBatcher(
        model.predict, max_batch_size=8, max_batch_time=0.0, max_queue_size=10
    )
    running = asyncio.create_task(batcher.predict(row_request(1.0)))
    await asyncio.sleep(0)
    gone = asyncio.create_task(batcher.predict(row_request(2.0, rows=3)))
    kept = asyncio.create_task(batcher.predict(row_request(3.0)))
    await asyncio.sleep(0.01)
    gone.cancel()
    model.gate.set()
    await running
    assert (await kept).outputs[0].data.tolist() == [6.0]
    assert model.batches == [1, 1]


async def test_wrong_row_count_fails_every_caller_of_the_batch() -> None:
    model = GatedModel()
    model.gate = asyncio.Event()
    batcher = AdaptiveBatcher(
        model.predict, max_batch_size=8, max_batch_time=0.0, max_queue_size=10
    )
    first = asyncio.create_task(batcher.predict(row_request(1.0)))
    await asyncio.sleep(0)
    model.wrong_rows = True
    others = [asyncio.create_task(batcher.predict(row_request(float(v)))) for v in range(2)]
    await asyncio.sleep(0.01)
    model.gate.set()
    await first
    for task in others:
        with pytest.raises(ModelError, match="one row per input row"):
            await task


async def test_with_several_slots_a_free_slot_waits_for_a_fuller_batch() -> None:
    model = GatedModel()
    model.gate = asyncio.Event()
    batcher = AdaptiveBatcher(
        model.predict, max_batch_size=3, max_batch_time=0.05, max_queue_size=10, concurrency=2
    )
    busy = asyncio.create_task(batcher.predict(row_request(0.0)))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(batcher.predict(row_request(float(v)))) for v in range(1, 4)]
    await asyncio.sleep(0.01)
    assert model.batches == [1, 3]  # the second slot took a full batch at once
    model.gate.set()
    await asyncio.gather(busy, *waiting)


async def test_with_a_pipeline_the_next_batch_leaves_while_one_computes() -> None:
    model = GatedModel()
    model.gate = asyncio.Event()
    batcher = AdaptiveBatcher(
        model.predict, max_batch_size=8, max_batch_time=60.0, max_queue_size=10, pipeline_depth=2
    )
    first = asyncio.create_task(batcher.predict(row_request(0.0)))
    await asyncio.sleep(0)
    second = asyncio.create_task(batcher.predict(row_request(1.0, rows=2)))
    await asyncio.sleep(0.01)
    assert model.batches == [1, 2]  # sent into the pipeline at once, not after the window
    rest = [asyncio.create_task(batcher.predict(row_request(float(v)))) for v in (2, 3, 4)]
    await asyncio.sleep(0.01)
    assert model.batches == [1, 2] and batcher.queued == 3  # both slots taken
    model.gate.set()
    await asyncio.gather(first, second, *rest)
    assert model.batches == [1, 2, 3]  # what waited left as one batch when a slot freed


async def test_with_workers_and_pipelines_an_idle_worker_still_waits_for_a_fuller_batch() -> None:
    model = GatedModel()
    model.gate = asyncio.Event()
    batcher = AdaptiveBatcher(
        model.predict,
        max_batch_size=3,
        max_batch_time=60.0,
        max_queue_size=10,
        concurrency=2,
        pipeline_depth=2,
    )
    busy = asyncio.create_task(batcher.predict(row_request(0.0)))
    await asyncio.sleep(0)
    one = asyncio.create_task(batcher.predict(row_request(1.0)))
    await asyncio.sleep(0.01)
    assert model.batches == [1] and batcher.queued == 1  # a worker is idle: wait for more
    more = [asyncio.create_task(batcher.predict(row_request(float(v)))) for v in (2, 3)]
    await asyncio.sleep(0.01)
    assert model.batches == [1, 3]  # full: the idle worker takes it at once
    piped = [asyncio.create_task(batcher.predict(row_request(float(v)))) for v in (4, 5)]
    await asyncio.sleep(0.01)
    # Every worker computes: a pipeline slot waits for a batch as big as the last one sent.
    assert model.batches == [1, 3] and batcher.queued == 2
    piped.append(asyncio.create_task(batcher.predict(row_request(6.0))))
    await asyncio.sleep(0.01)
    assert model.batches == [1, 3, 3] and batcher.queued == 0
    model.gate.set()
    await asyncio.gather(busy, one, *more, *piped)


async def test_a_pipeline_slot_waits_for_a_batch_no_smaller_than_the_last() -> None:
    model = GatedModel()
    model.gate = asyncio.Event()
    batcher = AdaptiveBatcher(
        model.predict, max_batch_size=8, max_batch_time=60.0, max_queue_size=10, pipeline_depth=3
    )
    first = asyncio.create_task(batcher.predict(row_request(0.0, rows=3)))
    await asyncio.sleep(0)
    small = [asyncio.create_task(batcher.predict(row_request(float(v)))) for v in (1, 2)]
    await asyncio.sleep(0.01)
    # The worker computes 3 rows: 2 queued rows would make a smaller batch; they wait.
    assert model.batches == [3] and batcher.queued == 2
    small.append(asyncio.create_task(batcher.predict(row_request(3.0))))
    await asyncio.sleep(0.01)
    assert model.batches == [3, 3] and batcher.queued == 0  # as big as the last: sent
    late = asyncio.create_task(batcher.predict(row_request(4.0)))
    await asyncio.sleep(0.01)
    assert model.batches == [3, 3] and batcher.queued == 1  # a free slot, but 1 row < 3
    model.gate.set()
    await asyncio.gather(first, *small, late)
    assert model.batches == [3, 3, 1]  # the worker freed: what waited left at once


async def test_a_pipeline_slot_waits_no_longer_than_max_batch_time() -> None:
    model = GatedModel()
    model.gate = asyncio.Event()
    batcher = AdaptiveBatcher(
        model.predict, max_batch_size=8, max_batch_time=0.05, max_queue_size=10, pipeline_depth=2
    )
    first = asyncio.create_task(batcher.predict(row_request(0.0, rows=4)))
    await asyncio.sleep(0)
    second = asyncio.create_task(batcher.predict(row_request(1.0)))
    await asyncio.sleep(0)
    assert model.batches == [4] and batcher.queued == 1
    for _ in range(1000):  # the window's timer sends it into the pipeline
        if not batcher.queued:
            break
        await asyncio.sleep(0.01)
    assert model.batches == [4, 1]
    model.gate.set()
    await asyncio.gather(first, second)
