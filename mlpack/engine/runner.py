"""``ModelRunner``, what the registry needs from a model, and ``LocalRunner``.

``LocalRunner`` gives each model its own thread with its own event loop
(``invocation.ModelThread``). The model's ``load``/``predict``/``unload`` run there, so a
slow or blocking model never stalls the server's loop, health checks or other models.
Worker-process runners (``engine.workers``) implement the same protocol; which runner
a model gets is decided in ``engine.placement``.
"""

from __future__ import annotations

import time
from typing import Protocol

from .._context import model_scope
from ..errors import Overloaded
from ..model import MLModel
from ..settings import ModelSettings
from ..types import InferenceRequest, InferenceResponse, MetadataModelResponse
from .deadlines import check, current_deadline
from .invocation import ModelThread, build_and_load, predict_with, unload_model
from .stats import current_timing


class ModelRunner(Protocol):
    """What the registry needs from something that runs a model."""

    settings: ModelSettings

    async def load(self) -> MetadataModelResponse: ...

    async def predict(self, request: InferenceRequest) -> InferenceResponse: ...

    async def unload(self) -> None: ...


class LocalRunner:
    """Runs one model instance in this process, on a dedicated thread and event loop.

    At most ``settings.max_queue_size`` predictions wait for or run on the model thread;
    beyond that ``Overloaded`` (503). A prediction whose caller has gone or whose
    deadline has passed by the time the thread reaches it is not started.
    """

    queues = True  # requests wait for the model thread: a caller who leaves is worth noticing

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        self.model: MLModel | None = None
        # Predictions submitted to / started on the model thread (each written by one thread).
        self._submitted = 0
        self._started = 0
        self.backlog = 0  # predictions submitted and not yet answered (the caller's loop)
        self._thread = ModelThread(f"mlpack-model-{settings.name}")

    async def load(self) -> MetadataModelResponse:
        try:
            self.model, metadata = await self._thread.run(build_and_load(self.settings))
        except BaseException:
            self._thread.stop()
            raise
        return metadata

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
                return await predict_with(model, request)

        self.backlog += 1
        try:
            return await self._thread.run(_predict(), guard)
        finally:
            self.backlog -= 1

    async def unload(self) -> None:
        model = self.model
        try:
            if model is not None:
                await self._thread.run(unload_model(model))
        finally:
            self.model = None
            self._thread.stop()
