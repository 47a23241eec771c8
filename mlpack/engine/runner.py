"""Run one model instance off the server's event loop.

``LocalRunner`` gives each model its own thread with its own event loop. The model's
``load``/``predict``/``unload`` (async or plain functions) run there, so a slow or
blocking model never stalls the server's loop, health checks or other models.
Worker-process runners (``engine.workers``) implement the same ``ModelRunner`` protocol.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from typing import Any, Awaitable, Callable, Protocol, TypeVar

from .._context import model_scope
from ..errors import MLPackError, ModelError, ModelLoadError
from ..model import MLModel
from ..settings import ModelSettings
from ..types import InferenceRequest, InferenceResponse, MetadataModelResponse
from .importer import import_implementation
from .stats import current_timing

T = TypeVar("T")


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()  # type: ignore[no-any-return]


class ModelRunner(Protocol):
    """What the registry needs from something that runs a model."""

    settings: ModelSettings

    async def load(self) -> MetadataModelResponse: ...

    async def predict(self, request: InferenceRequest) -> InferenceResponse: ...

    async def unload(self) -> None: ...


def instantiate_model(settings: ModelSettings) -> MLModel:
    """Import the model's class and build it (raises ``ModelLoadError``)."""
    if not settings.implementation:
        raise ModelLoadError(f"model '{settings.name}': settings have no 'implementation'")
    cls = import_implementation(settings.implementation, settings.folder)
    if not (isinstance(cls, type) and issubclass(cls, MLModel)):
        raise ModelLoadError(
            f"model '{settings.name}': '{settings.implementation}' is not an mlpack.MLModel subclass"
        )
    return cls(settings)


async def call_model(function: Callable[..., Any], *args: Any) -> Any:
    """Call a model method that may be ``async def`` or a plain function."""
    result = function(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


async def load_model(model: MLModel) -> MetadataModelResponse:
    """Run ``model.load()`` and return its metadata; failures become ``ModelLoadError``."""
    try:
        loaded = await call_model(model.load)
    except MLPackError:
        raise
    except Exception as error:
        raise ModelLoadError(f"model '{model.name}' failed to load: {error!r}") from error
    if loaded is False:
        raise ModelLoadError(f"model '{model.name}': load() returned False")
    model.ready = True
    metadata: MetadataModelResponse = await call_model(model.metadata)
    return metadata


async def predict_with(model: MLModel, request: InferenceRequest) -> InferenceResponse:
    """Run ``model.predict`` and turn unexpected exceptions into ``ModelError``."""
    try:
        response = await call_model(model.predict, request)
    except MLPackError:
        raise
    except Exception as error:
        raise ModelError(f"model '{model.name}' failed: {error}") from error
    return _checked(model, response)


def predict_sync(model: MLModel, request: InferenceRequest) -> InferenceResponse:
    """``predict_with`` for a model whose ``predict`` is a plain function (no event loop)."""
    try:
        response = model.predict(request)
    except MLPackError:
        raise
    except Exception as error:
        raise ModelError(f"model '{model.name}' failed: {error}") from error
    return _checked(model, response)


def _checked(model: MLModel, response: Any) -> InferenceResponse:
    if not isinstance(response, InferenceResponse):
        raise ModelError(
            f"model '{model.name}': predict() returned {type(response).__name__}, "
            "expected InferenceResponse"
        )
    return response


class LocalRunner:
    """Runs one model instance in this process, on a dedicated thread and event loop."""

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        self.model: MLModel | None = None
        # Predictions submitted to / started on the model thread (each written by one thread).
        self._submitted = 0
        self._started = 0
        self._loop = _new_event_loop()
        self._thread = threading.Thread(
            target=self._run_loop, name=f"mlpack-model-{settings.name}", daemon=True
        )
        self._thread.start()

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()
        self._loop.close()

    async def _on_model_thread(self, coroutine: Awaitable[T]) -> T:
        """Run ``coroutine`` on the model's loop and await its result here.

        One callback each way and no ``concurrent.futures`` machinery: this hop is on
        every request, so it is kept as cheap as a cross-thread handoff can be.
        """
        caller_loop = asyncio.get_running_loop()
        result: asyncio.Future[T] = caller_loop.create_future()

        def deliver(done: asyncio.Future[T]) -> None:
            if result.cancelled():
                return
            if done.cancelled():
                result.cancel()
            elif (error := done.exception()) is not None:
                result.set_exception(error)
            else:
                result.set_result(done.result())

        tasks: list[asyncio.Future[T]] = []

        def start() -> None:
            task = asyncio.ensure_future(coroutine, loop=self._loop)
            tasks.append(task)
            task.add_done_callback(lambda done: caller_loop.call_soon_threadsafe(deliver, done))

        self._loop.call_soon_threadsafe(start)
        try:
            return await result
        except asyncio.CancelledError:
            # The caller gave up (client gone, deadline): stop the model-side work too.
            self._loop.call_soon_threadsafe(lambda: [task.cancel() for task in tasks])
            raise

    async def load(self) -> MetadataModelResponse:
        async def _load() -> MetadataModelResponse:
            with model_scope(self.settings.name, self.settings.parameters.version):
                self.model = instantiate_model(self.settings)
                return await load_model(self.model)

        try:
            return await self._on_model_thread(_load())
        except BaseException:
            self._stop()
            raise

    async def predict(self, request: InferenceRequest) -> InferenceResponse:
        model = self.model
        assert model is not None, "predict() before load()"
        timing = current_timing()
        submitted = time.perf_counter()
        self._submitted += 1
        if timing is not None:
            timing.parallel_queue = self._submitted - self._started

        async def _predict() -> InferenceResponse:
            self._started += 1
            if timing is not None:
                timing.queue_wait += time.perf_counter() - submitted  # after any batch wait
            with model_scope(model.name, model.version):
                return await predict_with(model, request)

        return await self._on_model_thread(_predict())

    async def unload(self) -> None:
        model = self.model
        try:
            if model is not None:
                await self._on_model_thread(self._in_scope(model, call_model(model.unload)))
        finally:
            self.model = None
            self._stop()

    @staticmethod
    async def _in_scope(model: MLModel, coroutine: Awaitable[T]) -> T:
        with model_scope(model.name, model.version):
            return await coroutine

    def _stop(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
