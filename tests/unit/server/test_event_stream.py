"""``EventStreamResponse`` in-process over ASGI: events already produced leave in one
write, the events waiting for a slow client are bounded, and the framing is unchanged.

The stream is a plain async iterator the test controls with events (no model, no timing).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson

from mlpack.server import streams
from mlpack.server.streams import EventStreamResponse
from mlpack.types import InferenceResponse


def _response(index: int, text: str = "") -> InferenceResponse:
    return InferenceResponse(
        model_name="m",
        id="r1",
        outputs=[
            {"name": "i", "shape": [1], "datatype": "INT64", "data": [index]},
            {"name": "t", "shape": [1], "datatype": "BYTES", "data": [text]},
        ],
    )


def _indexes(body: bytes) -> list[int]:
    events = [e for e in body.split(b"\n\n") if e]
    assert all(e.startswith(b"data: ") for e in events)
    return [orjson.loads(e[6:])["outputs"][0]["data"][0] for e in events]


async def _silent_receive() -> dict[str, Any]:
    await asyncio.Event().wait()  # the client never disconnects
    raise AssertionError("unreachable")


async def test_events_already_produced_leave_in_one_write() -> None:
    first_written = asyncio.Event()
    bodies: list[bytes] = []
    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)
        if message["type"] == "http.response.body" and message["body"]:
            bodies.append(message["body"])
            first_written.set()

    async def stream() -> AsyncIterator[InferenceResponse]:
        await first_written.wait()  # the model "works" until the first event is out
        for index in range(1, 6):  # then five responses come without a pause
            yield _response(index)

    response = EventStreamResponse(_response(0), stream(), streams.inference_response_body, False)
    await response({"type": "http"}, _silent_receive, send)

    assert [_indexes(body) for body in bodies] == [[0], [1, 2, 3, 4, 5]]
    assert messages[0]["type"] == "http.response.start"
    assert messages[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert len(messages) == 4  # start, the first event, the five together, the end


async def test_an_error_event_follows_the_events_before_it_in_order() -> None:
    from mlpack.errors import ModelError

    bodies: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message["body"]:
            bodies.append(message["body"])

    async def stream() -> AsyncIterator[InferenceResponse]:
        yield _response(1)
        yield _response(2)
        raise ModelError("model 'm' failed while streaming: boom")

    response = EventStreamResponse(_response(0), stream(), streams.inference_response_body, False)
    await response({"type": "http"}, _silent_receive, send)

    events = [e for e in b"".join(bodies).split(b"\n\n") if e]
    assert [orjson.loads(e[6:]).get("outputs", [{}])[0].get("data") for e in events[:3]] == [
        [0],
        [1],
        [2],
    ]
    assert orjson.loads(events[3][6:]) == {"error": "model 'm' failed while streaming: boom"}
    assert len(events) == 4


async def test_events_waiting_for_a_slow_client_are_bounded(monkeypatch: Any) -> None:
    monkeypatch.setattr(streams, "OUTBOX_BYTES", 100_000)
    text = "x" * 40_000  # each event is a little over 40 kB
    client_reads = asyncio.Event()
    drawn = 0

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message["body"]:
            await client_reads.wait()  # the client reads nothing until told to

    async def stream() -> AsyncIterator[InferenceResponse]:
        nonlocal drawn
        for index in range(1, 50):
            drawn += 1
            yield _response(index, text)

    response = EventStreamResponse(
        _response(0, text), stream(), streams.inference_response_body, False
    )
    task = asyncio.ensure_future(response({"type": "http"}, _silent_receive, send))
    for _ in range(50):
        await asyncio.sleep(0)
    # Being written: the events that had gathered (0-2, past 100 kB); waiting: 3-5 (past
    # 100 kB again); held by the sender: 6. Nothing more is read from the stream.
    assert drawn == 6
    client_reads.set()
    await task
    assert drawn == 49


class _Tagged(InferenceResponse):
    tag: str = "extra"


def _reference(response: InferenceResponse) -> dict[str, Any]:
    body = response.model_dump(exclude_none=True)
    if body.get("parameters") == {}:
        del body["parameters"]
    return body


def test_the_event_body_is_what_pydantic_would_dump() -> None:
    import numpy as np

    from mlpack.types import Parameters

    cases = [
        _response(3, "word"),
        InferenceResponse(model_name="m", outputs=[]),
        InferenceResponse(
            model_name="m",
            model_version="2",
            id="",
            parameters=Parameters(content_type="str", headers=None, custom=1),
            outputs=[
                {
                    "name": "y",
                    "shape": [2, 1],
                    "datatype": "FP32",
                    "parameters": {"content_type": "np", "other": None},
                    "data": [[1.5], [None]],
                },
                {"name": "n", "shape": [0], "datatype": "FP64"},
                {"name": "d", "shape": [1], "datatype": "BYTES", "data": {"a": None, "b": 1}},
            ],
        ),
        InferenceResponse(model_name="m", parameters=Parameters(), outputs=[]),
        InferenceResponse(
            model_name="m",
            outputs=[{"name": "a", "shape": [3], "datatype": "INT32", "data": np.arange(3)}],
        ),
        _Tagged(model_name="m", outputs=[]),
    ]
    for response in cases:
        fast = orjson.dumps(
            streams.inference_response_body(response), option=orjson.OPT_SERIALIZE_NUMPY
        )
        assert fast == orjson.dumps(_reference(response), option=orjson.OPT_SERIALIZE_NUMPY)
