"""Streaming models for worker tests, observable from the test process through files.

Each request's input ``x`` is ``[tag, count]``: the model yields ``count`` responses
``[tag, index]`` for it, reading requests one after another. Request parameters:

* ``dir``: a folder the model records into: ``produced`` (responses produced so far,
  rewritten before each yield) and, when its generator is closed or ends, ``closed``
  (the number produced by then);
* ``release``: before producing its last response for a request the model creates
  ``<dir>/waiting``, then waits until ``<dir>/release`` exists (a gate the test opens);
* ``fail_at``: raise after producing this many responses.
"""

import asyncio
import os
import time
from pathlib import Path

from mlpack import MLModel
from mlpack.types import InferenceResponse, ResponseOutput

GATE_LIMIT = 60.0  # seconds a gate may stay shut (a net for a broken test)


def _record(folder, name, value):
    if folder:
        temporary = Path(folder) / f".{name}.{os.getpid()}"
        temporary.write_text(str(value))
        os.replace(temporary, Path(folder) / name)


def _options(payload):
    parameters = payload.parameters.model_dump() if payload.parameters else {}
    tag, count = (float(v) for v in payload.inputs[0].data)
    return (
        tag,
        int(count),
        parameters.get("dir"),
        parameters.get("release"),
        parameters.get("fail_at"),
    )


def _chunk(name, tag, index):
    return InferenceResponse(
        model_name=name,
        outputs=[ResponseOutput(name="y", shape=[2], datatype="FP64", data=[tag, float(index)])],
    )


class Streamer(MLModel):
    """An async generator."""

    async def predict_stream(self, payloads):
        produced = 0
        folder = None
        try:
            async for payload in payloads:
                tag, count, folder, release, fail_at = _options(payload)
                for index in range(count):
                    if release and index == count - 1:
                        _record(folder, "waiting", produced)
                        limit = time.monotonic() + GATE_LIMIT
                        while not (Path(folder) / "release").exists():
                            if time.monotonic() > limit:
                                raise TimeoutError("the test never opened the gate")
                            await asyncio.sleep(0.005)
                    if fail_at is not None and produced == fail_at:
                        raise KeyError("vocabulary")
                    produced += 1
                    _record(folder, "produced", produced)
                    yield _chunk(self.name, tag, index)
        finally:
            _record(folder, "closed", produced)


class SyncStreamer(MLModel):
    """A plain generator (it reads a plain iterator of requests)."""

    def predict_stream(self, payloads):
        produced = 0
        folder = None
        try:
            for payload in payloads:
                tag, count, folder, release, _ = _options(payload)
                for index in range(count):
                    if release and index == count - 1:
                        _record(folder, "waiting", produced)
                        limit = time.monotonic() + GATE_LIMIT
                        while not (Path(folder) / "release").exists():
                            if time.monotonic() > limit:
                                raise TimeoutError("the test never opened the gate")
                            time.sleep(0.005)
                    produced += 1
                    _record(folder, "produced", produced)
                    yield _chunk(self.name, tag, index)
        finally:
            _record(folder, "closed", produced)
