"""Invoking a model: build it, load it, call ``predict`` (sync or async), hop threads.

The one home for how a model's own code is called. ``LocalRunner`` (a model thread in
the server process) and the worker child (``engine.workers.worker``) both use it, so a
model behaves the same wherever it runs: ``load``/``predict``/``unload`` may be plain
functions or ``async def``, unexpected exceptions become ``ModelLoadError`` /
``ModelError``, and ``predict`` must return an ``InferenceResponse``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .. import tracing
from .._context import model_scope
from ..errors import MLPackError, ModelError, ModelLoadError
from ..model import MLModel
from ..settings import ModelSettings
from ..types import InferenceRequest, InferenceResponse, MetadataModelResponse
from .failures import attach_traceback
from .importer import import_implementation

logger = logging.getLogger("mlpack.engine")

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop when uvloop is installed, else asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def instantiate_model(settings: ModelSettings) -> MLModel:
    """Import the model's class and build it (raises ``ModelLoadError``)."""
    if not settings.implementation:
        raise ModelLoadError(f"model '{settings.name}': settings have no 'implementation'")
    cls = import_implementation(settings.implementation, settings.folder)
    if not (isinstance(cls, type) and issubclass(cls, MLModel)):
        raise ModelLoadError(
            f"model '{settings.name}': '{settings.implementation}' "
            "is not an mlpack.MLModel subclass"
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
        failure = ModelLoadError(f"model '{model.name}' failed to load: {error!r}")
        raise attach_traceback(failure, error) from error
    if loaded is False:
        raise ModelLoadError(f"model '{model.name}': load() returned False")
    model.ready = True
    metadata: MetadataModelResponse = await call_model(model.metadata)
    return metadata


async def build_and_load(settings: ModelSettings) -> tuple[MLModel, MetadataModelResponse]:
    """Instantiate and load the model ``settings`` name, in its scope (metrics, logs)."""
    with model_scope(settings.name, settings.parameters.version):
        model = instantiate_model(settings)
        return model, await load_model(model)


async def predict_with(model: MLModel, request: InferenceRequest) -> InferenceResponse:
    """Run ``model.predict`` and turn unexpected exceptions into ``ModelError``."""
    try:
        with tracing.stage("predict") as span:
            if span is not None:
                _describe(span, model, request)
            response = await call_model(model.predict, request)
    except MLPackError:
        raise
    except Exception as error:
        raise _model_failed(model, error) from error
    return _checked(model, response)


def predict_sync(model: MLModel, request: InferenceRequest) -> InferenceResponse:
    """``predict_with`` for a model whose ``predict`` is a plain function (no event loop)."""
    response = _predict_plain(model, request, awaitable_ok=False)
    assert response is not None  # only with awaitable_ok
    return response


def predict_inline(model: MLModel, request: InferenceRequest) -> InferenceResponse | None:
    """``predict_sync`` on the caller's own loop (``inline_predict``). None when ``predict``
    returned an awaitable after all (a plain wrapper around ``async def``): the awaitable is
    closed unrun and the caller runs the prediction on the model thread instead."""
    return _predict_plain(model, request, awaitable_ok=True)


def _predict_plain(
    model: MLModel, request: InferenceRequest, awaitable_ok: bool
) -> InferenceResponse | None:
    try:
        with tracing.stage("predict") as span:
            if span is not None:
                _describe(span, model, request)
            response = model.predict(request)
            if (
                awaitable_ok
                and not isinstance(response, InferenceResponse)
                and inspect.isawaitable(response)
            ):
                close = getattr(response, "close", None)
                if close is not None:
                    close()
                return None
    except MLPackError:
        raise
    except Exception as error:
        raise _model_failed(model, error) from error
    return _checked(model, response)


def is_plain(function: Callable[..., Any]) -> bool:
    """Whether ``function`` is a plain function (not ``async def``)."""
    return not inspect.iscoroutinefunction(function)


def predict_blocking(
    model: MLModel, request: InferenceRequest, loop: asyncio.AbstractEventLoop
) -> InferenceResponse:
    """Run one prediction to completion from blocking code (a worker process)."""
    with model_scope(model.name, model.version):  # labels custom metrics and logs
        if inspect.iscoroutinefunction(model.predict):
            return loop.run_until_complete(predict_with(model, request))
        return predict_sync(model, request)  # a plain function needs no event loop turn


async def unload_model(model: MLModel) -> None:
    """Run ``model.unload()`` in the model's scope."""
    with model_scope(model.name, model.version):
        await call_model(model.unload)


def _describe(span: Any, model: MLModel, request: InferenceRequest) -> None:
    span.set_attribute("mlpack.model.name", model.name)
    span.set_attribute("mlpack.model.version", model.version or "")
    shape = request.inputs[0].shape if request.inputs else []
    span.set_attribute("mlpack.batch.size", shape[0] if shape else 1)


def _model_failed(model: MLModel, error: Exception) -> ModelError:
    """The ``ModelError`` for a model's exception, its traceback attached as text (the
    registry logs it with the request id, rate-limited: ``engine.failures``)."""
    failure = ModelError(f"model '{model.name}' failed: {error}")
    attach_traceback(failure, error)
    return failure


def _checked(model: MLModel, response: Any) -> InferenceResponse:
    if not isinstance(response, InferenceResponse):
        raise ModelError(
            f"model '{model.name}': predict() returned {type(response).__name__}, "
            "expected InferenceResponse"
        )
    return response


class _Call:
    """One hop's state, shared by the caller's thread and the model thread."""

    __slots__ = ("abandoned", "started", "task")

    def __init__(self) -> None:
        self.abandoned = False  # the caller stopped waiting
        self.started = False  # the model thread began the work
        self.task: asyncio.Task[None] | None = None

    def cancel(self) -> None:  # on the model thread
        if self.started and self.task is not None and not self.task.done():
            self.task.cancel()


class ModelThread:
    """A thread running its own event loop, and the cheap hop onto it from another loop.

    Parameters:
        name: the thread's name (shown in tracebacks and profilers).
    """

    def __init__(self, name: str) -> None:
        self._loop = new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name=name, daemon=True)
        self._thread.start()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The thread's event loop (for hand-overs that outlive one ``run``)."""
        return self._loop

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()
        self._loop.close()

    async def run(
        self, coroutine: Coroutine[Any, Any, T], guard: Callable[[], None] | None = None
    ) -> T:
        """Run ``coroutine`` on the thread's loop and await its result here.

        One callback each way and no ``concurrent.futures`` machinery: this hop is on
        every request, so it is kept as cheap as a cross-thread handoff can be. The
        result is handed to the caller's loop the moment the coroutine returns, not
        after the model loop's other queued steps (which, for a plain-function
        ``predict``, are whole predictions). ``guard`` runs on the model thread just
        before the work starts and may raise to refuse it (deadline passed, stopping).
        Cancelling the caller before the work starts means it never starts; once
        started, the work is cancelled too (a plain function runs to its end).
        """
        caller_loop = asyncio.get_running_loop()
        result: asyncio.Future[T] = caller_loop.create_future()
        call = _Call()

        def deliver(value: Any, error: BaseException | None) -> None:
            if result.done():
                return
            if error is None:
                result.set_result(value)
            elif isinstance(error, asyncio.CancelledError):
                result.cancel()
            else:
                result.set_exception(error)

        async def guarded() -> None:
            value: Any = None
            error: BaseException | None = None
            try:
                if call.abandoned:
                    coroutine.close()
                    return
                call.started = True
                if guard is not None:
                    guard()
                value = await coroutine
            except BaseException as raised:  # delivered to the caller, not raised here
                error = raised
            finally:
                coroutine.close()  # a no-op once it has run; else no "never awaited" warning
            if not call.abandoned:
                caller_loop.call_soon_threadsafe(deliver, value, error)
            del value, error  # the caller owns them now; no frame keeps them alive

        def start() -> None:
            call.task = self._loop.create_task(guarded())

        self._loop.call_soon_threadsafe(start)
        try:
            return await result
        except asyncio.CancelledError:
            # The caller gave up (client gone, deadline): drop the work if it has not
            # started, cancel it if it has.
            call.abandoned = True
            self._loop.call_soon_threadsafe(call.cancel)
            raise

    def stop(self) -> None:
        """Stop the loop (the thread then closes it and ends)."""
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
