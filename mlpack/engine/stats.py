"""Per model-version inference statistics, and the one seam the request path reports through.

``ModelRegistry.infer`` opens an ``InferTiming`` for each request
(``open_timing``/``close_timing``) and, when it finishes, hands an ``InferEvent`` to its
observer. Parts of the engine that know more fill the open timing in: a runner records how
long the request waited for the model (``queue_wait``) and how many requests were queued for
it; a batcher records the batch size and marks one request per batch as the execution.
Nothing else in the engine knows about metrics or statistics.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class InferTiming:
    """What the engine learns about one request while it runs (filled in by runners/batchers)."""

    queue_wait: float = 0.0
    batch_size: int = 1
    executions: int = 1  # 1 for the request that stands for its batch's execution, else 0
    batch_queue: int | None = None  # requests in the model's batch queue at arrival
    parallel_queue: int | None = None  # requests waiting for the model's runner at dispatch


_timing: ContextVar[InferTiming | None] = ContextVar("mlpack_infer_timing", default=None)


def current_timing() -> InferTiming | None:
    """The timing of the request being dispatched in this context (None outside ``infer``)."""
    return _timing.get()


def open_timing() -> tuple[InferTiming, Token[InferTiming | None]]:
    """Start timing a request in this context; pass the token to ``close_timing``."""
    timing = InferTiming()
    return timing, _timing.set(timing)


def close_timing(token: Token[InferTiming | None]) -> None:
    _timing.reset(token)


@dataclass(frozen=True)
class InferEvent:
    """One finished inference request for a known model version."""

    model_name: str
    model_version: str
    ok: bool
    duration: float  # seconds, from dispatch to response (validation included)
    timing: InferTiming

    @property
    def compute(self) -> float:
        return max(0.0, self.duration - self.timing.queue_wait)


@dataclass(frozen=True)
class StreamEvent:
    """One finished stream for a known model version."""

    model_name: str
    model_version: str
    ok: bool
    duration: float  # seconds, from dispatch to the stream's end
    first_chunk: float | None  # seconds to the first response (None: there was none)
    chunks: int  # responses sent


class InferenceObserver(Protocol):
    """Told about every inference request the registry dispatches.

    An observer may also define ``on_stream_open(model_name, model_version)`` and
    ``on_stream(StreamEvent)`` (called when a stream opens and ends) and
    ``on_stream_stalled(model_name, model_version)`` (a stream abandoned because its
    client stopped reading); all are optional.
    """

    def on_infer(self, event: InferEvent) -> None: ...


class ObserverGroup:
    """Fans one event out to several observers."""

    def __init__(self, observers: Sequence[InferenceObserver]) -> None:
        self.observers = tuple(observers)

    def on_infer(self, event: InferEvent) -> None:
        for observer in self.observers:
            observer.on_infer(event)

    def on_stream_open(self, model_name: str, model_version: str) -> None:
        for observer in self.observers:
            notify = getattr(observer, "on_stream_open", None)
            if notify is not None:
                notify(model_name, model_version)

    def on_stream(self, event: StreamEvent) -> None:
        for observer in self.observers:
            notify = getattr(observer, "on_stream", None)
            if notify is not None:
                notify(event)

    def on_stream_stalled(self, model_name: str, model_version: str) -> None:
        for observer in self.observers:
            notify = getattr(observer, "on_stream_stalled", None)
            if notify is not None:
                notify(model_name, model_version)


@dataclass
class _Duration:
    count: int = 0
    ns: int = 0

    def add(self, seconds: float, count: int = 1) -> None:
        self.count += count
        self.ns += int(seconds * 1e9)

    def as_dict(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass
class ModelStats:
    """Counters for one model version, in the shape of Triton's statistics extension."""

    name: str
    version: str
    last_inference: int = 0  # milliseconds since the epoch
    inference_count: int = 0
    execution_count: int = 0
    success: _Duration = field(default_factory=_Duration)
    fail: _Duration = field(default_factory=_Duration)
    queue: _Duration = field(default_factory=_Duration)
    compute_infer: _Duration = field(default_factory=_Duration)
    batches: dict[int, _Duration] = field(default_factory=dict)
    # Streams (``infer_stream``): ended ok / with an error, responses sent, times.
    stream_success: _Duration = field(default_factory=_Duration)
    stream_fail: _Duration = field(default_factory=_Duration)
    stream_first_chunk: _Duration = field(default_factory=_Duration)
    stream_chunks: int = 0

    def as_dict(self) -> dict[str, Any]:
        zero = _Duration().as_dict()
        extra: dict[str, Any] = {}
        if self.stream_success.count or self.stream_fail.count:
            extra["stream_stats"] = {
                "success": self.stream_success.as_dict(),
                "fail": self.stream_fail.as_dict(),
                "first_chunk": self.stream_first_chunk.as_dict(),
                "chunks": self.stream_chunks,
            }
        return {
            "name": self.name,
            "version": self.version,
            "last_inference": self.last_inference,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {
                "success": self.success.as_dict(),
                "fail": self.fail.as_dict(),
                "queue": self.queue.as_dict(),
                "compute_input": zero,
                "compute_infer": self.compute_infer.as_dict(),
                "compute_output": zero,
            },
            "batch_stats": [
                {"batch_size": size, "compute_infer": duration.as_dict()}
                for size, duration in sorted(self.batches.items())
            ],
            **extra,
        }


class StatsRecorder:
    """Keeps ``ModelStats`` per model version from the registry's events (an observer)."""

    def __init__(self) -> None:
        self._stats: dict[tuple[str, str], ModelStats] = {}
        self._lock = threading.Lock()

    def on_infer(self, event: InferEvent) -> None:
        key = (event.model_name, event.model_version)
        with self._lock:
            stats = self._stats.get(key)
            if stats is None:
                stats = self._stats[key] = ModelStats(*key)
            stats.last_inference = int(time.time() * 1000)
            if not event.ok:
                stats.fail.add(event.duration)
                return
            timing = event.timing
            stats.success.add(event.duration)
            stats.queue.add(timing.queue_wait)
            stats.compute_infer.add(event.compute)
            stats.inference_count += 1
            if timing.executions:
                stats.execution_count += timing.executions
                batch = stats.batches.setdefault(timing.batch_size, _Duration())
                batch.add(event.compute, timing.executions)

    def on_stream(self, event: StreamEvent) -> None:
        key = (event.model_name, event.model_version)
        with self._lock:
            stats = self._stats.get(key)
            if stats is None:
                stats = self._stats[key] = ModelStats(*key)
            stats.last_inference = int(time.time() * 1000)
            (stats.stream_success if event.ok else stats.stream_fail).add(event.duration)
            if event.first_chunk is not None:
                stats.stream_first_chunk.add(event.first_chunk)
            stats.stream_chunks += event.chunks

    def all(self) -> list[ModelStats]:
        """Copies of every model version's stats (for the supervisor to keep)."""
        with self._lock:
            return copy.deepcopy(list(self._stats.values()))

    def get(self, name: str, version: str | None) -> ModelStats:
        """The stats of one model version (zeros when it has served nothing yet)."""
        key = (name, version or "")
        with self._lock:
            stats = self._stats.get(key)
            return stats if stats is not None else ModelStats(*key)
