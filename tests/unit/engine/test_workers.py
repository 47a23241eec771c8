"""Worker messages and the worker pool (real spawned processes, kept few and short)."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import time

import numpy as np
import pytest

from mlpack.codecs.tensors import validate_inputs
from mlpack.engine.workers.messages import (
    Call,
    FrameDecoder,
    LoadModel,
    Ping,
    Predict,
    Reply,
    Status,
    Stop,
    UnloadModel,
    WorkerStatus,
    encode_frame,
    pack_request,
    unpack_request,
)
from mlpack.engine.workers.pool import WorkerPool, WorkerRunner
from mlpack.errors import InvalidRequest, NoCapacity, WorkerError
from mlpack.settings import ModelSettings
from mlpack.types import InferenceRequest
from tests.helpers.server import ASSETS


def request(values: list[float], slow: bool = False) -> InferenceRequest:
    inference = InferenceRequest.model_validate(
        {
            "id": "r1",
            "inputs": [{"name": "x", "datatype": "FP64", "shape": [len(values)], "data": values}],
        }
    )
    validate_inputs(inference.inputs)
    return inference


def model_settings(name: str) -> ModelSettings:
    return ModelSettings.resolve(ASSETS / "models" / name / "model-settings.json")


@pytest.mark.parametrize(
    "message",
    [
        LoadModel(
            "echo#1", ModelSettings(name="echo", implementation="models.EchoModel", folder="/x")
        ),
        UnloadModel("echo#1"),
        Ping(),
        Stop(),
        Predict("echo#1", pack_request(request([1.0, 2.0]))),
        Reply(3, error=WorkerError("worker 1 died")),
        Reply(4, value={"a": np.arange(5)}),
        Reply(5, value=(1, 2), started=12.5),
        Status(),
        Reply(6, value=WorkerStatus(pid=10, received=3, started=2, answered=1)),
    ],
)
def test_messages_survive_pickling_and_framing(message: object) -> None:
    assert type(pickle.loads(pickle.dumps(message))) is type(message)
    frame = b"".join(bytes(chunk) for chunk in encode_frame(Call(7, message)))
    decoder = FrameDecoder()
    # Byte by byte for the first part, then the rest: framing must not depend on chunking.
    got = [m for b in frame[:20] for m in decoder.feed(bytes([b]))] + decoder.feed(frame[20:])
    assert len(got) == 1 and got[0].call_id == 7
    assert type(got[0].body) is type(message)


def test_a_reply_keeps_when_the_worker_started_the_call() -> None:
    frame = b"".join(bytes(c) for c in encode_frame(Reply(3, value="v", started=41.25)))
    (reply,) = FrameDecoder().feed(frame)
    assert (reply.call_id, reply.value, reply.started) == (3, "v", 41.25)


def test_numpy_data_travels_out_of_band() -> None:
    big = request([0.5] * 100_000)
    chunks = encode_frame(Predict("m", pack_request(big)))
    assert len(chunks[0]) < 5_000 and sum(len(bytes(c)) for c in chunks) > 800_000
    decoded = unpack_request(FrameDecoder().feed(b"".join(bytes(c) for c in chunks))[0].request)
    assert isinstance(decoded.inputs[0].data, np.ndarray) and decoded.inputs[0].data.flags.writeable
    assert decoded.inputs[0]._decoded is decoded.inputs[0].data


async def test_pool_serves_survives_sigkill_and_stops() -> None:
    pool = WorkerPool(1, stop_timeout=5)
    await pool.start()
    try:
        echo = WorkerRunner(model_settings("echo"), pool)
        slow = WorkerRunner(model_settings("slow"), pool)
        await echo.load()
        await slow.load()
        response = await echo.predict(request([1.0, 2.0]))
        assert list(response.outputs[0].data) == [1.0, 2.0]
        with pytest.raises(InvalidRequest, match="values must be strings"):
            await echo.predict(
                InferenceRequest.model_validate(
                    {"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1], "data": [1]}]}
                )
            )
        # Kill the worker while it holds a request: the request fails fast, a replacement serves.
        # The slow call would take 60 s: failing with the pool's own error (long before the
        # 30 s hang guard) is the evidence that the death, not the call, ended it.
        held = asyncio.create_task(slow.predict(request([60.0])))
        for _ in range(3000):  # gate: the worker holds the request
            if pool.workers[0].in_flight:
                break
            await asyncio.sleep(0.01)
        assert pool.workers[0].in_flight == 1
        pid = pool.workers[0].process.pid
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(WorkerError, match="exited while serving"):
            await asyncio.wait_for(held, 30)
        # Until the replacement runs, requests fail at once with 503 (no capacity), never wait.
        refusals: list[NoCapacity] = []
        for _ in range(600):
            try:
                response = await asyncio.wait_for(echo.predict(request([3.0])), 30)
                break
            except NoCapacity as error:
                refusals.append(error)
                await asyncio.sleep(0.05)
        assert all(e.retry_after and e.status == 503 for e in refusals)
        assert list(response.outputs[0].data) == [3.0]
        assert pool.workers[0].process.pid != pid
    finally:
        await pool.close()
    assert all(not w.process.is_alive() for w in pool.workers)


async def test_waiting_requests_get_freed_slots_in_arrival_order_and_none_is_lost() -> None:
    pool = WorkerPool(1, stop_timeout=5, max_in_flight=1)
    await pool.start()
    try:
        echo = WorkerRunner(model_settings("echo"), pool)
        await echo.load()
        finished: list[int] = []
        picks = 0
        pick = pool._pick

        def counting_pick(key: str) -> object:
            nonlocal picks
            picks += 1
            return pick(key)

        pool._pick = counting_pick  # type: ignore[method-assign]

        async def one(i: int) -> float:
            response = await echo.predict(request([float(i)]))
            finished.append(i)
            return float(response.outputs[0].data[0])

        results = await asyncio.gather(*(one(i) for i in range(40)))
        assert results == [float(i) for i in range(40)]
        assert finished == sorted(finished)  # one slot, handed over oldest first
        # A freed slot is offered to waiters until one takes it, not to every waiter each time.
        assert picks < 4 * 40
        assert pool.workers[0].reserved == 0 and pool.workers[0].in_flight == 0
    finally:
        await pool.close()


def test_packed_requests_and_responses_round_trip_exactly() -> None:
    from mlpack.engine.workers.messages import pack_response, unpack_response
    from mlpack.types import InferenceResponse

    original = InferenceRequest.model_validate(
        {
            "id": "r9",
            "parameters": {"content_type": "np", "custom": [1, 2]},
            "inputs": [
                {"name": "x", "datatype": "INT16", "shape": [2, 2], "data": [[1, 2], [3, 4]]},
                {
                    "name": "s",
                    "datatype": "BYTES",
                    "shape": [1],
                    "data": ["héllo"],
                    "parameters": {"content_type": "str"},
                },
            ],
            "outputs": [{"name": "y", "parameters": {"binary_data": True}}],
        }
    )
    validate_inputs(original.inputs)
    copy = unpack_request(pickle.loads(pickle.dumps(pack_request(original), protocol=5)))
    assert copy.model_dump() == {
        **original.model_dump(),
        "inputs": [
            {**original.inputs[0].model_dump(), "data": copy.inputs[0].data},
            original.inputs[1].model_dump(),
        ],
    }
    assert copy.inputs[0]._decoded.dtype == np.int16 and copy.inputs[0]._decoded.tolist() == [
        1,
        2,
        3,
        4,
    ]
    assert copy.parameters.custom == [1, 2] and copy.outputs[0].parameters.binary_data is True

    unvalidated = InferenceRequest.model_validate(
        {"inputs": [{"name": "b", "datatype": "BYTES", "shape": [1], "data": [1]}]}
    )
    assert (
        unpack_request(pack_request(unvalidated)).inputs[0]._decoded is None
    )  # checked again later

    response = InferenceResponse.model_validate(
        {
            "model_name": "m",
            "model_version": "2",
            "id": "r9",
            "parameters": {"headers": {"a": "b"}},
            "outputs": [{"name": "y", "shape": [2], "datatype": "FP32", "data": [0.5, 1.5]}],
        }
    )
    back = unpack_response(pickle.loads(pickle.dumps(pack_response(response), protocol=5)))
    assert back.model_dump() == response.model_dump()


@pytest.mark.parametrize(
    "array",
    [
        np.array([[1.5, np.nan], [-0.0, np.inf]]),
        np.array([True, False, True]),
        np.arange(6, dtype=np.uint64).reshape(2, 3) * np.uint64(2**61),
        np.array([1.5, 2.5], dtype=np.float16),
        np.array(["2024-01-02T03:04:05"], dtype="datetime64[ns]"),
        np.arange(12, dtype=">i4").reshape(3, 4)[:, 1:3],  # big-endian, not contiguous
        np.array([b"ab", b"", "é".encode()], dtype=object),
    ],
)
def test_small_arrays_cross_with_their_dtype_shape_and_values(array: np.ndarray) -> None:
    from mlpack.engine.workers.messages import pack_response, unpack_response
    from mlpack.types import InferenceResponse, ResponseOutput

    response = InferenceResponse(
        model_name="m",
        outputs=[ResponseOutput(name="y", shape=list(array.shape), datatype="BYTES", data=array)],
    )
    frame = b"".join(bytes(c) for c in encode_frame(Reply(1, value=pack_response(response))))
    back = unpack_response(FrameDecoder().feed(frame)[0].value).outputs[0].data
    assert isinstance(back, np.ndarray) and back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    if array.dtype != object:
        assert back.flags.writeable  # models may work in place
        back[...] = back  # and really can


async def test_a_cancelled_call_holds_its_worker_slot_until_the_worker_answers() -> None:
    pool = WorkerPool(1, stop_timeout=5, max_in_flight=1)
    await pool.start()
    try:
        echo = WorkerRunner(model_settings("echo"), pool)
        slow = WorkerRunner(model_settings("slow"), pool)
        await echo.load()
        await slow.load()
        abandoned = asyncio.create_task(slow.predict(request([1.0])))
        await asyncio.sleep(0.2)
        abandoned.cancel()  # the client went away; the worker is still sleeping
        with pytest.raises(asyncio.CancelledError):
            await abandoned
        worker = pool.workers[0]
        assert worker.in_flight == 1  # still busy: no second request is pushed onto it
        started = time.monotonic()
        response = await asyncio.wait_for(echo.predict(request([7.0])), 10)
        assert list(response.outputs[0].data) == [7.0]
        assert time.monotonic() - started > 0.5  # it waited for the slow call to end
        assert worker.in_flight == 0 and not worker.pending
    finally:
        await pool.close()
