"""A streaming test model whose pace and failures the test controls, through files.

Request parameters (all optional):
- ``count``: chunks to produce (default 3);
- ``gate``: a path; before its last chunk the model waits until that file exists (the
  test creates it once it has received the first chunk);
- ``record``: a path the model appends a line to for every chunk it produced
  (``chunk N``) and, when its generator ends early or late, ``closed`` (server-side
  counter the test reads; it works the same in worker processes);
- ``fail_at``: raise at that chunk index;
- ``size``: characters of padding per chunk (for back-pressure tests);
- ``tag``: echoed in every chunk (each concurrent stream checks it gets only its own).

With a ``text_input`` input it streams the words of the text as ``text_output`` (the
generate extension); ``predict`` answers the whole text at once.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

from mlpack import MLModel
from mlpack.types import InferenceRequest, InferenceResponse, ResponseOutput

GATE_WAIT = 120.0  # seconds a gated model waits for its gate at most


def _record(path: Any, line: str) -> None:
    if path:
        fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)


async def _wait_for(path: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GATE_WAIT
    while not os.path.exists(path):
        if loop.time() > deadline:
            raise TimeoutError(f"gate {path} never opened")
        await asyncio.sleep(0.01)


def _text(payload: InferenceRequest) -> str | None:
    for request_input in payload.inputs:
        if request_input.name == "text_input":
            value = request_input.data[0]
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def _chunk(name: str, index: int, tag: str, padding: str, text: str | None) -> InferenceResponse:
    outputs = [
        ResponseOutput(name="index", shape=[1], datatype="INT64", data=[index]),
        ResponseOutput(name="tag", shape=[1], datatype="BYTES", data=[tag + padding]),
    ]
    if text is not None:
        outputs = [ResponseOutput(name="text_output", shape=[1], datatype="BYTES", data=[text])]
    return InferenceResponse(model_name=name, outputs=outputs)


class Streamer(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        text = _text(payload) or ""
        return _chunk(self.name, 0, "", "", text.upper())

    async def predict_stream(
        self, payloads: AsyncIterator[InferenceRequest]
    ) -> AsyncIterator[InferenceResponse]:
        async for payload in payloads:
            options = payload.parameters.model_extra if payload.parameters else {}
            options = options or {}
            record = options.get("record")
            gate = options.get("gate")
            fail_at = options.get("fail_at")
            tag = str(options.get("tag", ""))
            padding = "x" * int(options.get("size", 0))
            text = _text(payload)
            words = text.split() if text is not None else None
            count = len(words) if words is not None else int(options.get("count", 3))
            try:
                for index in range(count):
                    if gate and index == count - 1:
                        await _wait_for(gate)
                    if fail_at is not None and index == int(fail_at):
                        raise RuntimeError(f"failed at chunk {index} on purpose")
                    word = None if words is None else words[index] + " "
                    _record(record, f"chunk {index}")
                    yield _chunk(self.name, index, tag, padding, word)
            finally:
                _record(record, "closed")
