"""``ModelRunner``, what the registry needs from a model, and ``LocalRunner``.

``LocalRunner`` gives each model its own thread with its own event loop
(``invocation.ModelThread``). The model's ``load``/``predict``/``unload`` run there, so a
slow or blocking model never stalls the server's loop, health checks or other models.
Worker-process runners (``engine.workers``) implement the same protocol; which runner
a model gets is decided in ``engine.placement``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from .._context import model_scope
from ..errors import ModelError, Overloaded, StreamingUnsupported
from ..model import MLModel
from ..settings import ModelSettings
from ..types import InferenceRequest, InferenceResponse, MetadataModelResponse
from .channel import ChannelClosed, StreamChannel
from .deadlines import check, current_deadline
from .invocation import (
    ModelThread,
    build_and_load,
    is_plain,
    predict_inline,
    predict_with,
    unload_model,
)
from .stats import current_timing
from .streaming import drive_stream

_SMOOTHING = 0.2  # weight of the newest compute time in ``inline_predict``'s moving average


class ModelRunner(Protocol):
    """What the registry needs from something that runs a model."""

    settings: ModelSettings

    async def load(self) -> MetadataModelResponse: ...

    async def predict(self, request: InferenceRequest) -> InferenceResponse: ...

    async def unload(self) -> None: ...


class StreamingRunner(ModelRunner, Protocol):
    """A ``ModelRunner`` that can also stream (``LocalRunner``, ``BatchingRunner``).

    Every built-in runner streams (in-process, worker pools, environments); a runner
    without ``predict_stream`` (e.g. one a test or an extension brings) is reached through
    ``stream_on``, which answers a clear ``StreamingUnsupported``.
    """

    def predict_stream(
        self, requests: AsyncIterator[InferenceRequest]
    ) -> AsyncIterator[InferenceResponse]:
        """The model's responses to ``requests``, as it produces them; closing the
        returned iterator (``aclose``) stops the model's generator."""
        ...


def stream_on(
    runner: object, requests: AsyncIterator[InferenceRequest]
) -> AsyncIterator[InferenceResponse]:
    """``runner.predict_stream(requests)``; a runner that cannot stream raises
    ``StreamingUnsupported`` saying so."""
    method = getattr(runner, "predict_stream", None)
    settings = getattr(runner, "settings", None)
    name = settings.name if settings is not None else "?"
    if method is None:
        raise StreamingUnsupported(
            name,
            f"model '{name}': its runner ({type(runner).__name__}) cannot stream",
        )
    stream: AsyncIterator[InferenceResponse] = method(requests)
    return stream


class LocalRunner:
    """Runs one model instance in this process, on a dedicated thread and event loop.

    At most ``settings.max_queue_size`` predictions wait for or run on the model thread;
    beyond that ``Overloaded`` (503). A prediction whose caller has gone or whose
    deadline has passed by the time the thread reaches it is not started.

    ``settings.inline_predict`` lets a plain-function ``predict`` run on the caller's loop
    instead (no hop each way): ``always``, or ``auto`` while the moving average of its
    compute time stays under ``inline_predict_max_ms``. Only when nothing else is queued
    or running on the model thread, so the model never runs two predictions at once.
    """

    queues = True  # requests wait for the model thread: a caller who leaves is worth noticing

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        self.model: MLModel | None = None
        # Predictions submitted to / started on the model thread (each written by one thread).
        self._submitted = 0
        self._started = 0
        self.backlog = 0  # predictions submitted and not yet answered (the caller's loop)
        self.inline_calls = 0  # predictions run on the caller's loop (inline_predict)
        self._plain = False  # predict is a plain function (set by load)
        self._compute: float | None = None  # moving average of predict's seconds
        self._thread = ModelThread(f"mlpack-model-{settings.name}")

    async def load(self) -> MetadataModelResponse:
        try:
            model, metadata = await self._thread.run(build_and_load(self.settings))
        except BaseException:
            self._thread.stop()
            raise
        self.model = model
        self._plain = is_plain(model.predict)
        return metadata

    def _inline(self) -> bool:
        """Whether the next prediction runs on the caller's loop (``inline_predict``)."""
        mode = self.settings.inline_predict
        if mode == "never" or not self._plain or self.backlog:
            return False
        if mode == "always":
            return True
        compute = self._compute
        return compute is not None and compute * 1000 < self.settings.inline_predict_max_ms

    def _measured(self, seconds: float) -> None:
        previous = self._compute
        self._compute = (
            seconds if previous is None else previous + _SMOOTHING * (seconds - previous)
        )

    async def predict(self, request: InferenceRequest) -> InferenceResponse:
        model = self.model
        assert model is not None, "predict() before load()"
        if self.backlog >= self.settings.max_queue_size:
            raise Overloaded(
                f"model '{model.name}': {self.backlog} requests are queued "
                f"(max_queue_size {self.settings.max_queue_size}); retry later",
                retry_after=1.0,
            )
        timing = current_timing()
        deadline = current_deadline()
        if self._inline():
            response = self._predict_inline(model, request, deadline)
            if response is not None:
                return response
        submitted = time.perf_counter()
        self._submitted += 1
        if timing is not None:
            timing.parallel_queue = self._submitted - self._started

        def guard() -> None:  # on the model thread, just before the work starts
            self._started += 1
            check(deadline, model.name)

        async def _predict() -> InferenceResponse:
            if timing is not None:
                timing.queue_wait += time.perf_counter() - submitted  # after any batch wait
            with model_scope(model.name, model.version):
                began = time.perf_counter()
                try:
                    return await predict_with(model, request)
                finally:
                    self._measured(time.perf_counter() - began)

        self.backlog += 1
        try:
            return await self._thread.run(_predict(), guard)
        finally:
            self.backlog -= 1

    def _predict_inline(
        self, model: MLModel, request: InferenceRequest, deadline: float | None
    ) -> InferenceResponse | None:
        """Run a plain-function ``predict`` here, on the caller's loop; None when it turned
        out to return an awaitable (then it always runs on the model thread)."""
        check(deadline, model.name)  # refused before it starts, as on the model thread
        timing = current_timing()
        if timing is not None:
            timing.parallel_queue = 1  # this request only: nothing else is queued
        began = time.perf_counter()
        with model_scope(model.name, model.version):
            response = predict_inline(model, request)
        if response is None:
            self._plain = False
            return None
        self._measured(time.perf_counter() - began)
        self.inline_calls += 1
        return response

    def predict_stream(
        self, requests: AsyncIterator[InferenceRequest]
    ) -> AsyncIterator[InferenceResponse]:
        """Run the model's ``predict_stream`` on its thread; responses cross to this loop
        through a ``StreamChannel`` of ``max_stream_buffer`` items (back-pressure).

        An open stream counts once against ``max_queue_size``. Closing this iterator
        cancels the model's side: its generator is closed before it produces another
        response. The caller's deadline is read now: the generator's body runs later,
        outside the context that set it.
        """
        return self._stream(requests, current_deadline())

    async def _stream(
        self, requests: AsyncIterator[InferenceRequest], deadline: float | None
    ) -> AsyncIterator[InferenceResponse]:
        model = self.model
        assert model is not None, "predict_stream() before load()"
        if self.backlog >= self.settings.max_queue_size:
            raise Overloaded(
                f"model '{model.name}': {self.backlog} requests and streams are open "
                f"(max_queue_size {self.settings.max_queue_size}); retry later",
                retry_after=1.0,
            )
        caller_loop = asyncio.get_running_loop()
        channel: StreamChannel[InferenceResponse] = StreamChannel(
            self.settings.max_stream_buffer, self._thread.loop, caller_loop
        )

        def guard() -> None:  # on the model thread, before the model's code runs
            check(deadline, model.name)

        async def produce() -> None:  # on the model thread
            stream = drive_stream(model, _OtherLoopRequests(requests, caller_loop))
            try:
                with model_scope(model.name, model.version):
                    async for response in stream:
                        await channel.put(response)
                channel.finish()
            except ChannelClosed:
                pass  # the consumer left: the finally below closes the model's generator
            except Exception as error:
                channel.fail(error)
            except BaseException:  # cancelled (the model thread is stopping)
                channel.fail(ModelError(f"model '{model.name}': the stream was stopped"))
                raise
            finally:
                await stream.aclose()  # type: ignore[attr-defined]

        self.backlog += 1
        producer = asyncio.ensure_future(self._thread.run(produce(), guard))
        producer.add_done_callback(_fail_channel(channel, model.name))
        try:
            while True:
                try:
                    response = await channel.get()
                except StopAsyncIteration:
                    return
                yield response
        finally:
            channel.close()
            if not producer.done():
                producer.cancel()
            self.backlog -= 1

    async def unload(self) -> None:
        model = self.model
        try:
            if model is not None:
                await self._thread.run(unload_model(model))
        finally:
            self.model = None
            self._thread.stop()


def _fail_channel(
    channel: StreamChannel[InferenceResponse], name: str
) -> Callable[[asyncio.Future[None]], None]:
    """When the hop to the model thread ends without ending the stream (refused by its
    guard, cancelled before it started), end the stream with that error."""

    def done(task: asyncio.Future[None]) -> None:
        if task.cancelled():
            channel.fail(ModelError(f"model '{name}': the stream was stopped"))
        else:
            error = task.exception()
            if error is not None:
                channel.fail(error)

    return done


class _OtherLoopRequests:
    """An async iterator on the model's loop over requests that live on the caller's loop."""

    def __init__(
        self, requests: AsyncIterator[InferenceRequest], loop: asyncio.AbstractEventLoop
    ) -> None:
        self._requests = requests
        self._loop = loop

    def __aiter__(self) -> _OtherLoopRequests:
        return self

    async def __anext__(self) -> InferenceRequest:
        future = asyncio.run_coroutine_threadsafe(_next(self._requests), self._loop)
        request = await asyncio.wrap_future(future)
        if request is None:
            raise StopAsyncIteration
        return request


async def _next(requests: AsyncIterator[InferenceRequest]) -> InferenceRequest | None:
    try:
        return await requests.__anext__()
    except StopAsyncIteration:
        return None
