"""How a model's own code is called, the same on a model thread and in a worker."""

from __future__ import annotations

import asyncio
import threading

import pytest

from mlpack import MLModel
from mlpack.engine.invocation import (
    ModelThread,
    build_and_load,
    new_event_loop,
    predict_blocking,
    predict_with,
)
from mlpack.errors import ModelError, ModelLoadError
from mlpack.settings import ModelSettings
from mlpack.types import InferenceRequest, InferenceResponse

REQUEST = InferenceRequest(inputs=[{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}])


class _Sync(MLModel):
    def predict(self, payload: InferenceRequest) -> InferenceResponse:  # type: ignore[override]
        thread = threading.current_thread().name
        return InferenceResponse(model_name=self.name, outputs=[], id=thread)


class _Async(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        return InferenceResponse(model_name=self.name, outputs=[], id="async")


class _Wrong(MLModel):
    def predict(self, payload: InferenceRequest) -> InferenceResponse:  # type: ignore[override]
        return "not a response"  # type: ignore[return-value]


class _Raises(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        raise KeyError("feature")


def _model(cls: type[MLModel]) -> MLModel:
    return cls(ModelSettings(name=cls.__name__.strip("_").lower(), implementation="x.Y"))


def test_blocking_predict_runs_sync_and_async_models() -> None:
    loop = new_event_loop()
    try:
        assert predict_blocking(_model(_Sync), REQUEST, loop).id == threading.current_thread().name
        assert predict_blocking(_model(_Async), REQUEST, loop).id == "async"
        with pytest.raises(ModelError, match="returned str, expected InferenceResponse"):
            predict_blocking(_model(_Wrong), REQUEST, loop)
        with pytest.raises(ModelError, match="model 'raises' failed: 'feature'"):
            predict_blocking(_model(_Raises), REQUEST, loop)
    finally:
        loop.close()


async def test_model_thread_runs_work_on_its_own_thread_and_cancels_it() -> None:
    thread = ModelThread("mlpack-model-test")
    try:
        response = await thread.run(predict_with(_model(_Sync), REQUEST))
        assert response.id == "mlpack-model-test"
        started, cancelled = asyncio.Event(), threading.Event()
        caller = asyncio.get_running_loop()

        async def forever() -> None:
            caller.call_soon_threadsafe(started.set)
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise

        task = asyncio.ensure_future(thread.run(forever()))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.to_thread(cancelled.wait, 10)
    finally:
        thread.stop()


async def test_build_and_load_names_a_bad_implementation() -> None:
    with pytest.raises(ModelLoadError, match="no 'implementation'"):
        await build_and_load(ModelSettings(name="m"))
