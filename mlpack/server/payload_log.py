"""Payload logging: sampled requests and responses as CloudEvents (KServe's logger format).

A model opts in with ``payload_log`` in its settings. Each logged request becomes up to
two events sharing one id: ``org.kubeflow.serving.inference.request`` (the request
body) and ``org.kubeflow.serving.inference.response`` (the response body). To a file
they are JSON lines in CloudEvents' structured form; to a URL each is POSTed in binary
form (``ce-*`` headers, the body as data), as KServe's logger does.

The request path only serialises the payloads and puts them on a bounded queue
(``max_queue``); a background thread writes them. A full queue drops the event and
counts it; a write that fails is logged (rate-limited) and counted. Nothing here can
block or fail a request. The counts are exported as
``payload_log_events_total{model_name, model_version, outcome}`` (outcome ``written``,
``dropped`` or ``failed``), so lost events show up on a dashboard, not only in the log.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.core import CounterMetricFamily

from ..settings import ModelSettings, PayloadLogSettings
from ..types import InferenceRequest, InferenceResponse

logger = logging.getLogger("mlpack.payload_log")

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
_STOP = object()


@dataclass
class Event:
    """One CloudEvent: attributes plus the JSON body."""

    id: str
    type: str
    source: str
    time: str
    model: str
    body: bytes

    def structured(self) -> bytes:
        """The event as one JSON object (CloudEvents structured mode), for a JSON line."""
        head = orjson.dumps(
            {
                "specversion": "1.0",
                "id": self.id,
                "type": self.type,
                "source": self.source,
                "time": self.time,
                "datacontenttype": "application/json",
                "inferenceservicename": self.model,
                "endpoint": self.model,
            }
        )
        return head[:-1] + b',"data":' + self.body + b"}"

    def headers(self) -> dict[str, str]:
        """Binary-mode CloudEvents headers (the body is the data)."""
        return {
            "ce-specversion": "1.0",
            "ce-id": self.id,
            "ce-type": self.type,
            "ce-source": self.source,
            "ce-time": self.time,
            "ce-inferenceservicename": self.model,
            "ce-endpoint": self.model,
            "content-type": "application/json",
        }


class _Destination:
    """One model's event queue and the thread that drains it."""

    def __init__(self, settings: PayloadLogSettings, base: Path | None) -> None:
        self.settings = settings
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=settings.max_queue)
        self.dropped = 0
        self.failed = 0
        self.written = 0
        self._last_warning = 0.0
        path = Path(settings.path) if settings.path else None
        if path is not None and not path.is_absolute() and base is not None:
            path = base / path
        self.path = path
        self._thread = threading.Thread(target=self._run, name="mlpack-payload-log", daemon=True)
        self._thread.start()

    def offer(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            self._warn("payload log queue full (max_queue %d): %d event(s) dropped so far",
                       self.settings.max_queue, self.dropped)  # fmt: skip

    def close(self, timeout: float = 5.0) -> None:
        try:
            self.queue.put(_STOP, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def _run(self) -> None:
        if self.path is not None:
            self._write_file(self.path)
        else:
            self._post(str(self.settings.url))

    def _write_file(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = path.open("ab")
        except OSError as error:
            logger.error("payload log: cannot open %s: %s (payloads are not logged)", path, error)
            self._discard()
            return
        with handle:
            while (event := self.queue.get()) is not _STOP:
                try:
                    handle.write(event.structured() + b"\n")
                    if self.queue.empty():
                        handle.flush()
                    self.written += 1
                except OSError as error:
                    self.failed += 1
                    self._warn("payload log: writing %s failed: %s", path, error)

    def _post(self, url: str) -> None:
        import httpx

        with httpx.Client(timeout=self.settings.timeout) as client:
            while (event := self.queue.get()) is not _STOP:
                try:
                    answer = client.post(url, content=event.body, headers=event.headers())
                    if answer.status_code >= 300:
                        raise httpx.HTTPStatusError(
                            f"status {answer.status_code}", request=answer.request, response=answer
                        )
                    self.written += 1
                except httpx.HTTPError as error:
                    self.failed += 1
                    self._warn("payload log: POST %s failed: %s (%d failed so far)",
                               url, error, self.failed)  # fmt: skip

    def _discard(self) -> None:
        while self.queue.get() is not _STOP:
            self.dropped += 1

    def _warn(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last_warning >= 10.0:  # at most one warning per 10 s per model
            self._last_warning = now
            logger.warning(message, *args)


class PayloadLogger:
    """The registry's ``payload_sink``: one destination per model that asks for logging.

    Parameters:
        source: the CloudEvents ``source`` attribute (e.g. the server's name).
    """

    def __init__(self, source: str = "mlpack") -> None:
        self.source = source
        self._destinations: dict[tuple[str, str], _Destination] = {}
        self._retired: dict[tuple[str, str], list[_Destination]] = {}  # replaced, still counted
        self._lock = threading.Lock()

    def destination(self, settings: ModelSettings) -> _Destination:
        key = (settings.name, settings.parameters.version or "")
        found = self._destinations.get(key)
        if found is None or found.settings != settings.payload_log:
            with self._lock:
                assert settings.payload_log is not None
                base = Path(settings.folder) if settings.folder else None
                found = _Destination(settings.payload_log, base)
                previous = self._destinations.get(key)
                self._destinations[key] = found
                if previous is not None:
                    self._retired.setdefault(key, []).append(previous)
            if previous is not None:
                previous.close(timeout=0)
        return found

    def record(
        self, settings: ModelSettings, request: InferenceRequest, response: InferenceResponse
    ) -> None:
        """Queue the request's (and response's) events; never raises."""
        config = settings.payload_log
        if config is None or (config.sample_rate < 1.0 and random.random() >= config.sample_rate):
            return
        try:
            destination = self.destination(settings)
            event_id = response.id or request.id or uuid.uuid4().hex
            stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
            model = settings.name
            if config.mode in ("all", "request"):
                body = _json(request.model_dump(exclude_none=True, exclude={"parameters"}))
                destination.offer(Event(event_id, REQUEST_TYPE, self.source, stamp, model, body))
            if config.mode in ("all", "response"):
                body = _json(response.model_dump(exclude_none=True))
                destination.offer(Event(event_id, RESPONSE_TYPE, self.source, stamp, model, body))
        except Exception:  # logging payloads must never fail the request
            logger.exception("payload log: model '%s': could not record a payload", settings.name)

    def stats(self, name: str, version: str = "") -> dict[str, int]:
        """Events written, dropped (queue full) and failed for a model since start."""
        key = (name, version)
        found = [*self._retired.get(key, []), *filter(None, [self._destinations.get(key)])]
        return {
            "written": sum(d.written for d in found),
            "dropped": sum(d.dropped for d in found),
            "failed": sum(d.failed for d in found),
        }

    def collect(self) -> Iterator[CounterMetricFamily]:
        """prometheus-client collector: events by outcome per model (read at scrape time)."""
        family = CounterMetricFamily(
            "payload_log_events",
            "Payload-log events by outcome: written, dropped (queue full), failed (write error).",
            labels=("model_name", "model_version", "outcome"),
        )
        for name, version in sorted({*self._destinations, *self._retired}):
            for outcome, count in self.stats(name, version).items():
                family.add_metric((name, version, outcome), count)
        yield family

    def close(self) -> None:
        """Write what is queued (bounded wait) and stop the threads."""
        with self._lock:
            for key, destination in self._destinations.items():
                self._retired.setdefault(key, []).append(destination)
            closing = list(self._destinations.values())
            self._destinations.clear()
        for destination in closing:
            destination.close()


def _json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY, default=str)
