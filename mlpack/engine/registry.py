"""Model lifecycle, versions and readiness; ``infer`` is the one call transports make."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .. import tracing
from ..codecs.tensors import validate_inputs
from ..errors import (
    DeadlineExceeded,
    InvalidRequest,
    MLPackError,
    ModelError,
    ModelLoadError,
    ModelNotFound,
    ModelNotReady,
    NoCapacity,
    ShuttingDown,
    WorkerError,
)
from ..settings import ModelSettings
from ..types import (
    InferenceRequest,
    InferenceResponse,
    MetadataModelResponse,
    MetadataTensor,
    RepositoryIndexResponseItem,
    State,
)
from . import deadlines
from .batching import ServingInfo, predict_reporting
from .failures import FailureLog, attach_traceback, log_error, traceback_text
from .ids import new_id
from .placement import RunnerFactory, RunnerPlacement
from .repository import discover_models
from .runner import ModelRunner, stream_on
from .stalls import StallGuard
from .stats import InferenceObserver, InferEvent, StreamEvent, close_timing, open_timing

logger = logging.getLogger("mlpack.registry")


def version_sort_key(version: str | None) -> tuple[int, tuple[object, ...]]:
    """Order versions so the newest sorts last: numeric parts compare as numbers."""
    if version is None:
        return (0, ())
    parts = tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"[.\-_+]", version)
        if part
    )
    return (1, parts)


@dataclass
class ModelEntry:
    """One model version known to the registry."""

    settings: ModelSettings
    state: State = State.UNAVAILABLE
    reason: str = ""
    runner: ModelRunner | None = None
    metadata: MetadataModelResponse | None = None
    in_flight: int = 0
    queues: bool = False  # requests wait in a queue (batching) before they are computed
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    # Counted by server readiness; an unload through the API clears it, a load sets it.
    load_at_startup: bool = True
    _outputs: frozenset[str] = frozenset()
    _inputs: dict[str, MetadataTensor] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def version(self) -> str | None:
        return self.settings.parameters.version


class PayloadSink(Protocol):
    """Where a model's payloads go (``server.payload_log``); must never block or raise."""

    def record(
        self, settings: ModelSettings, request: InferenceRequest, response: InferenceResponse
    ) -> None: ...


class RepositoryCoordinator(Protocol):
    """Applies a repository load/unload everywhere it must hold (several front-ends)."""

    async def apply(self, action: str, name: str) -> None: ...


class ModelRegistry:
    """Knows every model version, loads and unloads them, and routes inference.

    Parameters:
        runner_factory: builds the runner for a model (default: ``RunnerPlacement()``,
            in-process threads with batching where a model asks for it).
        repository_root: folder re-scanned when a model is loaded by name.
        observer: told about every inference request once it finishes (metrics, stats).
        strict_readiness: ready only when every startup model is ready (else: at least one).
        failure_log: where failed predictions are logged (rate-limited per model).
        inference_timeout: seconds a request may take when its model sets no
            ``inference_timeout`` of its own (None: no limit).
        stream_stall_timeout: seconds a stream's response may wait for a client that
            stopped reading, when its model sets none of its own (0 or None: no bound).
    """

    def __init__(
        self,
        runner_factory: RunnerFactory | None = None,
        repository_root: Path | None = None,
        observer: InferenceObserver | None = None,
        strict_readiness: bool = True,
        failure_log: FailureLog | None = None,
        inference_timeout: float | None = None,
        stream_stall_timeout: float | None = 60.0,
    ) -> None:
        self.inference_timeout = inference_timeout
        self.stream_stall_timeout = stream_stall_timeout
        self._runner_factory = runner_factory or RunnerPlacement()
        self._repository_root = repository_root
        # Loading by name may pick up folders added after start (the ``repository_rescan`` setting).
        self.rescan = True
        self.observer = observer
        self.strict_readiness = strict_readiness
        # Told about each answered request of a model with ``payload_log`` (server side).
        self.payload_sink: PayloadSink | None = None
        # Several front-end processes: the repository API's load/unload go through it, and it
        # calls load()/unload() in every front-end (server/frontends.py). None: here only.
        self.coordinator: RepositoryCoordinator | None = None
        self.failure_log = failure_log or FailureLog()
        self._models: dict[str, dict[str | None, ModelEntry]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # Set at shutdown: readiness answers false while requests are still served.
        self.draining = False
        # Inference calls in progress (their tasks), so shutdown's hard limit can end them.
        self._calls: set[asyncio.Task[object]] = set()
        # Cancels calls still running at their deadlines (one timer for all: ``_bounded``).
        self._expiry = deadlines.Expiry()
        self._aborting = False

    # -- lookup -------------------------------------------------------------------
    def entries(self) -> list[ModelEntry]:
        return [entry for versions in self._models.values() for entry in versions.values()]

    def _versions(self, name: str) -> dict[str | None, ModelEntry]:
        versions = self._models.get(name)
        if not versions:
            raise ModelNotFound(name)
        return versions

    def get(self, name: str, version: str | None = None) -> ModelEntry:
        """The entry for ``name`` (newest version when ``version`` is None)."""
        versions = self._versions(name)
        if version is not None:
            entry = versions.get(version)
            if entry is None:
                raise ModelNotFound(name, version)
            return entry
        if len(versions) == 1:  # the common case: one version, nothing to order
            return next(iter(versions.values()))
        ready = [e for e in versions.values() if e.state is State.READY]
        candidates = ready or list(versions.values())
        return max(candidates, key=lambda e: version_sort_key(e.version))

    def get_ready(self, name: str, version: str | None = None) -> ModelEntry:
        entry = self.get(name, version)
        if entry.state is not State.READY or entry.runner is None:
            what = f"model '{name}'" + (f" version '{version}'" if version else "")
            detail = f": {entry.reason}" if entry.reason else ""
            raise ModelNotReady(f"{what} is not ready ({entry.state.value}){detail}")
        if not has_capacity(entry.runner):
            what = f"model '{name}'" + (f" version '{version}'" if version else "")
            raise ModelNotReady(
                f"{what} is not ready: no worker process can run it right now "
                "(a replacement is starting)"
            )
        return entry

    def ready(self, name: str, version: str | None = None) -> bool:
        """Whether ``name`` (``version``) can serve now (raises ``ModelNotFound``)."""
        entry = self.get(name, version)
        return (
            entry.state is State.READY and entry.runner is not None and has_capacity(entry.runner)
        )

    def queues(self, name: str, version: str | None = None) -> bool:
        """Whether requests to ``name`` wait in a queue before compute (so a caller who
        leaves meanwhile is worth noticing); raises ``ModelNotFound``."""
        return self.get(name, version).queues

    def is_ready(self) -> bool:
        """True when every model meant to be serving is ready and can take requests
        (``strict_readiness``; a model unloaded through the API is not: unloading on purpose
        does not take the whole server out of service), or when at least one model is
        (not strict); never while the server is draining for shutdown."""
        if self.draining:
            return False
        if not self.strict_readiness:
            return any(
                entry.state is State.READY and has_capacity(entry.runner)
                for entry in self.entries()
            )
        return all(
            entry.state is State.READY and has_capacity(entry.runner)
            for entry in self.entries()
            if entry.load_at_startup
        )

    def versions_of(self, name: str) -> list[str]:
        versions = [v for v in self._versions(name) if v is not None]
        return sorted(versions, key=version_sort_key)

    async def metadata(self, name: str, version: str | None = None) -> MetadataModelResponse:
        entry = self.get_ready(name, version)
        assert entry.metadata is not None
        metadata = entry.metadata.model_copy()
        metadata.name = name
        if not metadata.versions:
            metadata.versions = self.versions_of(name)
        return metadata

    def index(self, ready: bool | None = None) -> list[RepositoryIndexResponseItem]:
        items = [
            RepositoryIndexResponseItem(
                name=e.name, version=e.version or "", state=e.state, reason=e.reason
            )
            for e in sorted(self.entries(), key=lambda e: (e.name, version_sort_key(e.version)))
        ]
        if ready:
            items = [item for item in items if item.state is State.READY]
        return items

    # -- lifecycle ------------------------------------------------------------------
    def add(self, settings: ModelSettings, load_at_startup: bool = True) -> ModelEntry:
        """Register a model version without loading it."""
        versions = self._models.setdefault(settings.name, {})
        entry = versions.get(settings.parameters.version)
        if entry is None:
            entry = ModelEntry(settings=settings, load_at_startup=load_at_startup)
            versions[settings.parameters.version] = entry
        else:
            entry.settings = settings
        return entry

    async def load_all(self, models: list[ModelSettings]) -> list[ModelSettings]:
        """Load many models concurrently; failures are logged and recorded, not raised.

        Returns the settings of the models that failed to load."""
        for settings in models:
            self.add(settings)
        outcomes = await asyncio.gather(*(self._load_quietly(s) for s in models))
        return [settings for settings, ok in zip(models, outcomes, strict=True) if not ok]

    async def _load_quietly(self, settings: ModelSettings) -> bool:
        try:
            await self.load_version(settings)
        except MLPackError as error:
            version = settings.parameters.version
            label = settings.name + (f":{version}" if version else "")
            text = traceback_text(error)
            log_error(logger, "load failed: %s", (error.message,), text, model=label)
            return False
        return True

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    async def load_version(self, settings: ModelSettings) -> ModelEntry:
        """Load (or reload, with no gap in service) one model version."""
        entry = self.add(settings)
        previous_runner = entry.runner if entry.state is State.READY else None
        if previous_runner is None:
            entry.state, entry.reason = State.LOADING, ""
        started = time.perf_counter()
        runner: ModelRunner | None = None
        try:
            runner = self._runner_factory(settings)
            metadata = await runner.load()
        except BaseException as error:
            reason = error.message if isinstance(error, MLPackError) else repr(error)
            if previous_runner is None:
                entry.state, entry.reason = State.UNAVAILABLE, reason
            else:
                entry.reason = f"reload failed, still serving the previous instance: {reason}"
            if isinstance(error, MLPackError):
                raise
            if isinstance(error, Exception):
                failure = ModelLoadError(f"model '{settings.name}' failed to load: {error!r}")
                raise attach_traceback(failure, error) from error
            raise
        self._install(entry, runner, metadata)
        logger.info(
            "model '%s'%s %s in %.2fs",
            settings.name,
            f" version '{settings.parameters.version}'" if settings.parameters.version else "",
            "reloaded" if previous_runner is not None else "ready",
            time.perf_counter() - started,
        )
        if previous_runner is not None:
            asyncio.get_running_loop().create_task(self._retire(entry, previous_runner))
        return entry

    def _install(
        self, entry: ModelEntry, runner: ModelRunner, metadata: MetadataModelResponse
    ) -> None:
        entry.runner, entry.metadata = runner, metadata
        entry.queues = bool(getattr(runner, "queues", False))
        entry._outputs = frozenset(t.name for t in metadata.outputs or [])
        entry._inputs = {t.name: t for t in metadata.inputs or []}
        entry.state, entry.reason = State.READY, ""

    async def _retire(self, entry: ModelEntry, runner: ModelRunner) -> None:
        """Unload a replaced runner once requests it is serving have finished."""
        await asyncio.sleep(0)  # let requests dispatched before the swap start
        while entry.in_flight and entry.runner is not runner:
            entry.idle.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await entry.idle.wait()
        try:
            await runner.unload()
        except Exception:
            logger.exception("model '%s': unloading the previous instance failed", entry.name)

    async def request_load(self, name: str) -> None:
        """The repository API's load: in this process, or everywhere through the coordinator."""
        if self.coordinator is not None:
            await self.coordinator.apply("load", name)
        else:
            await self.load(name)

    async def request_unload(self, name: str) -> None:
        """The repository API's unload: in this process, or everywhere through the coordinator."""
        if self.coordinator is not None:
            await self.coordinator.apply("unload", name)
        else:
            await self.unload(name)

    async def load(self, name: str) -> list[ModelEntry]:
        """Load (or reload) every version of ``name``, re-reading its settings from disk."""
        async with self._lock(name):
            settings_list = self._settings_on_disk(name)
            if not settings_list:
                raise ModelNotFound(name)
            loaded: list[ModelEntry] = []
            for settings in settings_list:
                entry = await self.load_version(settings)
                entry.load_at_startup = True
                loaded.append(entry)
            return loaded

    def _settings_on_disk(self, name: str) -> list[ModelSettings]:
        known = [entry.settings for entry in self._models.get(name, {}).values()]
        if self._repository_root is not None:
            found, _ = discover_models(self._repository_root)
            matching = [s for s in found if s.name == name]
            if (
                not self.rescan
            ):  # only folders known at start: a dropped-in folder is never imported
                folders = {settings.folder for settings in known}
                matching = [s for s in matching if s.folder in folders]
            if matching:
                return matching
        return known

    async def unload(self, name: str) -> None:
        """Unload every version of ``name``; it stays listed as UNAVAILABLE."""
        async with self._lock(name):
            versions = self._versions(name)
            for entry in versions.values():
                entry.load_at_startup = False
                runner, entry.runner = entry.runner, None
                if runner is None:
                    if entry.state is State.UNAVAILABLE and not entry.reason:
                        entry.reason = "unloaded"  # never loaded: listed as its peers list it
                    continue
                entry.state, entry.reason = State.UNLOADING, ""
                try:
                    await runner.unload()
                finally:
                    entry.state, entry.reason = State.UNAVAILABLE, "unloaded"
                logger.info(
                    "model '%s'%s unloaded",
                    entry.name,
                    f" version '{entry.version}'" if entry.version else "",
                )

    async def close(self) -> None:
        """Unload everything (server shutdown)."""
        for name in list(self._models):
            try:
                await self.unload(name)
            except Exception:
                logger.exception("model '%s': unload at shutdown failed", name)

    # -- inference -------------------------------------------------------------------
    async def infer(
        self,
        name: str,
        version: str | None,
        request: InferenceRequest,
        timeout: float | None = None,
    ) -> InferenceResponse:
        """Validate ``request``, run it on the model, and fill in the response envelope.

        ``timeout`` is the client's own deadline in seconds from now (gRPC deadline,
        REST ``Inference-Timeout``); the earliest of it, the request's ``timeout``
        parameter and the model's ``inference_timeout`` bounds the request (504 past it).
        """
        entry = self.get_ready(name, version)
        task = asyncio.current_task()
        if task is None or self._aborting:
            return await self._bounded(entry, request, timeout, task)
        self._calls.add(task)
        try:
            return await self._bounded(entry, request, timeout, task)
        except asyncio.CancelledError:
            if not self._aborting:
                raise
            task.uncancel()
            raise ShuttingDown(
                f"model '{entry.name}': the server stopped before this request finished; retry it"
            ) from None
        finally:
            self._calls.discard(task)

    async def infer_stream(
        self,
        name: str,
        version: str | None,
        requests: AsyncIterator[InferenceRequest],
        timeout: float | None = None,
    ) -> AsyncIterator[InferenceResponse]:
        """Stream ``requests`` through the model's ``predict_stream``; yield finished responses.

        Nothing happens before the first ``__anext__``; errors before the first response
        (unknown model, not ready, invalid request, a model that cannot stream) are raised
        from it, so a transport can still answer them as a plain error. Each request is
        validated like ``infer``'s; each response gets the model's name and version and the
        id of the request the model last read. Deadlines: ``timeout`` (the client's) bounds
        the whole stream; the model's ``inference_timeout`` (or the server's) bounds the
        wait for the first response and between two responses (504 / an error event past
        either). While the server drains for shutdown, new streams are refused (503) and
        open ones run until ``graceful_timeout``. Closing the returned iterator closes the
        model's generator.
        """
        entry = self.get_ready(name, version)
        if self.draining or self._aborting:
            raise ShuttingDown(
                f"model '{entry.name}': the server is shutting down and opens no new streams; "
                "retry on another replica"
            )
        call = _StreamCall(self, entry, timeout)
        async for response in call.run(requests):
            yield response

    def stall_guard(self, name: str, version: str | None) -> StallGuard:
        """The bound on handing ``name``'s stream responses to a client that stopped
        reading: the model's ``stream_stall_timeout``, else the server's (see ``stalls``)."""
        entry = self.get(name, version)
        limit = entry.settings.stream_stall_timeout
        if limit is None:
            limit = self.stream_stall_timeout
        notify = getattr(self.observer, "on_stream_stalled", None)
        return StallGuard(entry.name, entry.version, limit, notify)

    def abort_in_flight(self) -> int:
        """Shutdown's hard limit: end every inference call still running or queued; each
        answers 503 (``ShuttingDown``). Returns how many were ended."""
        self._aborting = True
        calls = [task for task in self._calls if not task.done()]
        for task in calls:
            task.cancel()
        return len(calls)

    async def _bounded(
        self,
        entry: ModelEntry,
        request: InferenceRequest,
        timeout: float | None,
        task: asyncio.Task[Any] | None,
    ) -> InferenceResponse:
        limit = entry.settings.inference_timeout
        if limit is None:
            limit = self.inference_timeout
        now = time.monotonic()
        deadline = deadlines.earliest(
            deadlines.after(timeout, now),
            deadlines.after(deadlines.timeout_parameter(request.parameters), now),
            deadlines.after(limit, now),
        )
        if deadline is None:
            return await self._observed(entry, request)
        token = deadlines.set_deadline(deadline)
        if task is None:  # not in a task (no server calls it so): asyncio's own timer
            try:
                async with asyncio.timeout(deadline - now):
                    return await self._observed(entry, request)
            except TimeoutError:
                raise deadlines.exceeded(entry.name) from None
            finally:
                deadlines.reset_deadline(token)
        watch = self._expiry.watch(task, deadline)
        try:
            return await self._observed(entry, request)
        except asyncio.CancelledError:
            if watch.timed_out():
                raise deadlines.exceeded(entry.name) from None
            raise
        finally:
            self._expiry.unwatch(watch)
            deadlines.reset_deadline(token)

    async def _observed(self, entry: ModelEntry, request: InferenceRequest) -> InferenceResponse:
        if tracing.active:
            return await self._infer_traced(entry, request)
        if self.observer is None:
            return await self._infer(entry, request)
        # -- observer seam: one event per request that reached a known model version --
        started, ok = time.perf_counter(), False
        timing, token = open_timing()
        try:
            response = await self._infer(entry, request)
            ok = True
            return response
        finally:
            close_timing(token)
            duration = time.perf_counter() - started
            self.observer.on_infer(
                InferEvent(entry.name, entry.version or "", ok, duration, timing)
            )

    async def _infer_traced(
        self, entry: ModelEntry, request: InferenceRequest
    ) -> InferenceResponse:
        """``infer`` in an ``infer`` span (tracing on): model, version and outcome recorded."""
        attributes = {"mlpack.model.name": entry.name, "mlpack.model.version": entry.version or ""}
        with tracing.span("infer", attributes) as current:
            if self.observer is None:
                return await self._infer(entry, request)
            started, ok = time.perf_counter(), False
            timing, token = open_timing()
            try:
                response = await self._infer(entry, request)
                ok = True
                return response
            finally:
                close_timing(token)
                current.set_attribute("mlpack.status", "ok" if ok else "error")
                duration = time.perf_counter() - started
                self.observer.on_infer(
                    InferEvent(entry.name, entry.version or "", ok, duration, timing)
                )

    async def _infer(self, entry: ModelEntry, request: InferenceRequest) -> InferenceResponse:
        with tracing.stage("validate"):
            validate_request(entry, request)
        runner = entry.runner
        assert runner is not None
        info = ServingInfo() if entry.settings.serving_info else None
        entry.in_flight += 1
        try:
            if info is None:
                response = await runner.predict(request)
            else:
                response = await predict_reporting(runner, request, info)
        except (ModelError, WorkerError) as error:
            if not isinstance(error, NoCapacity):  # no live worker: 503, not a model failure
                self.failure_log.predict_failed(
                    entry.name, entry.version, _request_id(request), error
                )
            raise
        except Exception as error:
            if not isinstance(error, MLPackError):
                self.failure_log.predict_failed(
                    entry.name, entry.version, _request_id(request), error
                )
            raise
        finally:
            entry.in_flight -= 1
            if not entry.in_flight:
                entry.idle.set()
        response = finish_response(entry, request, response)
        if entry.settings.payload_log is not None and self.payload_sink is not None:
            self.payload_sink.record(entry.settings, request, response)
        if info is not None:
            info.attach(response)
        return response


def _request_id(request: InferenceRequest) -> str | None:
    """The request's id, or the caller's ``x-request-id`` header (None when neither)."""
    if request.id:
        return request.id
    parameters = request.parameters
    headers = getattr(parameters, "headers", None) if parameters is not None else None
    if isinstance(headers, dict):
        value = headers.get("x-request-id")
        if isinstance(value, str):
            return value
    return None


def has_capacity(runner: ModelRunner | None) -> bool:
    """Whether ``runner`` can take requests now (a worker-backed runner may have none
    while its workers are being replaced); runners without the notion always can."""
    check = getattr(runner, "has_capacity", None)
    return True if check is None else bool(check())


def validate_request(entry: ModelEntry, request: InferenceRequest) -> None:
    """Check the envelope and tensors against the protocol and the model's metadata."""
    if not request.inputs:
        raise InvalidRequest(f"model '{entry.name}': request has no inputs")
    validate_inputs(request.inputs)
    declared = entry._inputs
    if declared:
        for request_input in request.inputs:
            spec = declared.get(request_input.name)
            if spec is None:
                raise InvalidRequest(
                    f"model '{entry.name}' has no input '{request_input.name}' "
                    f"(inputs: {', '.join(sorted(declared))})"
                )
            if spec.datatype is not request_input.datatype:
                raise InvalidRequest(
                    f"input '{request_input.name}': model '{entry.name}' expects "
                    f"{spec.datatype.value}, got {request_input.datatype.value}"
                )
            if not _shape_matches(spec.shape, request_input.shape):
                raise InvalidRequest(
                    f"input '{request_input.name}': model '{entry.name}' expects shape "
                    f"{spec.shape}, got {request_input.shape}"
                )
    if request.outputs:
        seen: set[str] = set()
        for requested in request.outputs:
            if requested.name in seen:
                raise InvalidRequest(f"output '{requested.name}' is requested more than once")
            seen.add(requested.name)
            if entry._outputs and requested.name not in entry._outputs:
                raise InvalidRequest(
                    f"model '{entry.name}' has no output '{requested.name}' "
                    f"(outputs: {', '.join(sorted(entry._outputs))})"
                )


def _shape_matches(expected: list[int], actual: list[int]) -> bool:
    if not expected:
        return True
    if len(expected) != len(actual):
        # A declared [N] also accepts [N, 1]-style batches of one feature, and vice versa.
        return False
    return all(e < 0 or e == a for e, a in zip(expected, actual, strict=False))


def finish_response(
    entry: ModelEntry, request: InferenceRequest, response: InferenceResponse
) -> InferenceResponse:
    """Fill in name, version and id; keep only requested outputs."""
    response.model_name = entry.name
    if response.model_version is None:
        response.model_version = entry.version
    if response.id is None:  # a given id (even "") is echoed; one is made only when absent
        response.id = request.id if request.id is not None else new_id()
    if request.outputs:
        wanted = [o.name for o in request.outputs]
        produced = {o.name: o for o in response.outputs}
        missing = [name for name in wanted if name not in produced]
        if missing:
            raise InvalidRequest(
                f"model '{entry.name}' did not produce requested output(s): {', '.join(missing)} "
                f"(produced: {', '.join(produced) or 'none'})"
            )
        response.outputs = [produced[name] for name in wanted]
    return response


class _StreamCall:
    """One stream through the registry: validation, deadlines, observation, finishing."""

    def __init__(self, registry: ModelRegistry, entry: ModelEntry, timeout: float | None) -> None:
        self.registry = registry
        self.entry = entry
        limit = entry.settings.inference_timeout
        self.gap = registry.inference_timeout if limit is None else limit
        self.deadline = deadlines.after(timeout)
        self.current: InferenceRequest | None = None  # the request the model last read
        self.chunks = 0
        self.loop = asyncio.get_running_loop()  # once: looked up per chunk it costs a getpid()

    async def _validated(
        self, requests: AsyncIterator[InferenceRequest]
    ) -> AsyncIterator[InferenceRequest]:
        async for request in requests:
            validate_request(self.entry, request)
            if request.id is None:  # one id for every response to this request
                request.id = new_id()
            self.current = request
            yield request

    def _wait_limit(self) -> tuple[float | None, bool]:
        """Seconds the next response may take, and whether the gap (not the stream's
        whole deadline) sets it."""
        left = deadlines.remaining(self.deadline)
        if left is None:
            return self.gap, True
        if self.gap is None or left < self.gap:
            return max(left, 0.0), False
        return self.gap, True

    async def _next(self, stream: AsyncIterator[InferenceResponse]) -> InferenceResponse:
        limit, by_gap = self._wait_limit()
        registry, entry = self.registry, self.entry
        task = asyncio.current_task(self.loop)
        if task is not None:
            registry._calls.add(task)
        try:
            if limit is None:
                return await stream.__anext__()
            async with asyncio.timeout(limit):
                return await stream.__anext__()
        except TimeoutError:
            if by_gap:
                what = "first response" if not self.chunks else "next response"
                raise DeadlineExceeded(
                    f"model '{entry.name}': no {what} within inference_timeout ({limit:g}s)"
                ) from None
            raise deadlines.exceeded(entry.name) from None
        except asyncio.CancelledError:
            if not registry._aborting or task is None:
                raise
            task.uncancel()
            raise ShuttingDown(
                f"model '{entry.name}': the server stopped before this stream finished"
            ) from None
        finally:
            if task is not None:
                registry._calls.discard(task)

    async def run(
        self, requests: AsyncIterator[InferenceRequest]
    ) -> AsyncIterator[InferenceResponse]:
        registry, entry = self.registry, self.entry
        runner = entry.runner
        assert runner is not None
        observer: Any = registry.observer
        label = (entry.name, entry.version or "")
        started = time.perf_counter()
        first: float | None = None
        ok = False
        span = None
        if tracing.active:
            span = tracing.start_span(
                "infer_stream",
                attributes={"mlpack.model.name": entry.name, "mlpack.model.version": label[1]},
            )
        token = deadlines.set_deadline(self.deadline)
        try:
            stream = stream_on(runner, self._validated(requests))
        finally:
            deadlines.reset_deadline(token)
        entry.in_flight += 1
        if observer is not None and hasattr(observer, "on_stream_open"):
            observer.on_stream_open(*label)
        try:
            while True:
                try:
                    response = await self._next(stream)
                except StopAsyncIteration:
                    break
                request = self.current
                if request is None:  # a model answering before it read any request
                    request = InferenceRequest(inputs=[])
                response = finish_response(entry, request, response)
                self.chunks += 1
                if first is None:
                    first = time.perf_counter() - started
                yield response
            ok = True
        except (ModelError, WorkerError) as error:
            if not isinstance(error, NoCapacity):
                registry.failure_log.predict_failed(
                    entry.name, entry.version, _stream_id(self.current), error
                )
            raise
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]
            entry.in_flight -= 1
            if not entry.in_flight:
                entry.idle.set()
            duration = time.perf_counter() - started
            if observer is not None and hasattr(observer, "on_stream"):
                observer.on_stream(StreamEvent(*label, ok, duration, first, self.chunks))
            if span is not None:
                span.set_attribute("mlpack.stream.chunks", self.chunks)
                span.set_attribute("mlpack.status", "ok" if ok else "error")
                span.end()


def _stream_id(request: InferenceRequest | None) -> str | None:
    return None if request is None else _request_id(request)
