"""One batch job: read lines, send them (merged, retried, spread over servers), write in order."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import orjson

from ..client.errors import ClientError, ServerError, UnsendableRequest
from ..errors import JobInterrupted as JobInterrupted  # in the error tree; re-exported
from .batching import SplitError, merge, merge_key, rows_of, split
from .output import OrderedWriter
from .progress import JobStats, NullReporter, Reporter
from .reader import InvalidLine, Line, count_lines, parse_line
from .rerun import FailedLinesWriter
from .retry import DEFAULT_RETRIES, DEFAULT_RETRY_FOR, Endpoints, RetryPolicy, blames_server

logger = logging.getLogger("mlpack.infer")

Transport = Literal["rest", "grpc"]


class InferClient(Protocol):
    async def infer_json(
        self,
        model_name: str,
        request: dict[str, Any],
        *,
        model_version: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


@dataclass
class InferOptions:
    """Everything a job needs; the CLI fills it from flags and ``MLPACK_INFER_*``."""

    urls: Sequence[str]
    model_name: str
    input_path: Path
    output_path: Path
    model_version: str | None = None
    workers: int = 10
    retries: int = DEFAULT_RETRIES
    retry_for: float = DEFAULT_RETRY_FOR
    batch_size: int = 1
    binary: bool = False
    transport: Transport = "rest"
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 60.0
    batch_interval: float = 0.0
    batch_jitter: float = 0.0
    use_ssl: bool = False
    insecure: bool = False
    # PEM files: the CA that signed the server (implies TLS); a client certificate and key.
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    resume: bool = False
    overwrite: bool = False
    retry_failed: bool = False
    backoff: float = 0.1


def make_client(url: str, options: InferOptions) -> InferClient:
    if options.transport == "grpc":
        from ..client.grpc import AsyncGrpcClient

        return AsyncGrpcClient(
            url,
            timeout=options.timeout,
            headers=options.headers,
            use_ssl=options.use_ssl,
            binary=options.binary,
            ca=options.ca,
            cert=options.cert,
            key=options.key,
        )
    from ..client.rest import AsyncClient

    return AsyncClient(
        url,
        timeout=options.timeout,
        headers=options.headers,
        binary=options.binary,
        use_ssl=options.use_ssl or bool(options.ca or options.cert),
        verify=_verify(options),
        max_connections=max(1, options.workers),
    )


def _verify(options: InferOptions) -> Any:
    """True/False, or an SSL context when a CA or a client certificate is given."""
    if not (options.ca or options.cert):
        return not options.insecure
    from ..client.tls import ssl_context

    return ssl_context(options.ca, options.cert, options.key, options.insecure)


def _record(payload: dict[str, Any]) -> bytes:
    return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"


def _error_record(
    index: int, request_id: str | None, reason: str, status: int | None = None
) -> bytes:
    payload: dict[str, Any] = {"id": request_id, "line": index + 1, "error": reason}
    if status is not None:
        payload["status"] = status
    return _record(payload)


# (line index, output record, error record or None, rows answered)
Result = tuple[int, bytes, bytes | None, int]


class Writer(Protocol):
    """Where a job's records go: ``OrderedWriter`` or ``FailedLinesWriter``."""

    start: int
    errors_before: int

    @property
    def lines_to_send(self) -> int | None: ...
    def input_lines(self, input_path: Path) -> Iterator[tuple[int, bytes]]: ...
    def put(self, index: int, record: bytes, error: bytes | None = None) -> None: ...
    def drain(self) -> int: ...
    def close(self, complete: bool = False) -> None: ...


def _rows(request: dict[str, Any]) -> int:
    """Rows a request carries: its first input's first dimension (1 for a scalar)."""
    try:
        shape = request["inputs"][0]["shape"]
        return int(shape[0]) if shape else 1
    except (KeyError, IndexError, TypeError, ValueError):
        return 1


class _Job:
    def __init__(
        self,
        options: InferOptions,
        writer: Writer,
        clients: list[InferClient],
        stats: JobStats,
    ) -> None:
        self.options = options
        self.writer = writer
        self.endpoints: Endpoints[InferClient] = Endpoints(clients)
        self.policy = RetryPolicy(
            retries=options.retries, retry_for=options.retry_for, base=options.backoff
        )
        self.stats = stats
        self.batch_size = max(1, options.batch_size)
        workers = max(1, options.workers)
        self.workers = workers
        self.queue: asyncio.Queue[list[Line] | None] = asyncio.Queue(maxsize=workers)
        # Lines read but not yet written: bounds memory whatever the file size.
        self.window = asyncio.Semaphore(max(64, 4 * workers * self.batch_size))

    # -- writing ---------------------------------------------------------------------------
    def _deliver(self, results: Sequence[Result]) -> None:
        for index, record, error, rows in results:
            self.writer.put(index, record, error)
            if error is None:
                self.stats.ok += 1
                self.stats.rows += rows
            else:
                self.stats.failed += 1
        for _ in range(self.writer.drain()):
            self.window.release()

    # -- reading ---------------------------------------------------------------------------
    async def produce(self) -> None:
        batch: list[Line] = []
        key: Any = None
        for index, raw in self.writer.input_lines(self.options.input_path):
            await self.window.acquire()
            try:
                line = parse_line(index, raw)
            except InvalidLine as invalid:
                logger.debug("line %d: %s", index + 1, invalid.reason)
                record = _error_record(
                    index, invalid.request_id, f"invalid request: {invalid.reason}"
                )
                self._deliver([(index, record, record, 0)])
                continue
            line_key = merge_key(line.request) if self.batch_size > 1 else None
            if batch and (line_key is None or line_key != key):
                await self.queue.put(batch)
                batch = []
            batch.append(line)
            key = line_key
            if line_key is None or len(batch) >= self.batch_size:
                await self.queue.put(batch)
                batch = []
        if batch:
            await self.queue.put(batch)
        for _ in range(self.workers):
            await self.queue.put(None)

    # -- sending ---------------------------------------------------------------------------
    async def work(self) -> None:
        interval, jitter = self.options.batch_interval, self.options.batch_jitter
        while (batch := await self.queue.get()) is not None:
            started = time.monotonic()
            self._deliver(await self._process(batch))
            if interval or jitter:
                pause = interval + random.uniform(0, jitter) - (time.monotonic() - started)
                if pause > 0:
                    await asyncio.sleep(pause)

    async def _process(self, batch: list[Line]) -> list[Result]:
        if len(batch) > 1:
            merged = merge([line.request for line in batch], f"batch-{batch[0].index + 1}")
            try:
                response = await self._send(merged, merged=True)
                parts = split(
                    response, [rows_of(line.request) for line in batch], [line.id for line in batch]
                )
                return [
                    (line.index, _record(part), None, _rows(line.request))
                    for line, part in zip(batch, parts, strict=True)
                ]
            except (ClientError, SplitError) as error:
                # One bad row must not fail its neighbours: send each line on its own.
                logger.debug(
                    "batch at line %d fell back to single requests: %s", batch[0].index + 1, error
                )
        return [await self._single(line) for line in batch]

    async def _single(self, line: Line) -> Result:
        try:
            response = await self._send(line.request, merged=False)
        except ClientError as error:
            # Only an answer (or a request refused before sending) has a status of its own.
            answered = isinstance(error, (ServerError, UnsendableRequest))
            status = int(error.status) if answered else None
            reason = error.reason if isinstance(error, (ServerError, UnsendableRequest)) else ""
            reason = reason or error.message
            logger.info("line %d failed: %s", line.index + 1, error.message)
            record = _error_record(line.index, line.id, reason, status)
            return line.index, record, record, 0
        response["id"] = line.id
        return line.index, _record(response), None, _rows(line.request)

    async def _send(self, request: dict[str, Any], *, merged: bool) -> dict[str, Any]:
        options = self.options
        attempt = 0
        first_failure: float | None = None
        while True:
            client = self.endpoints.pick()
            try:
                response = await client.infer_json(
                    options.model_name, request, model_version=options.model_version
                )
            except ClientError as error:
                if blames_server(error):
                    self.endpoints.failed(client)
                now = time.monotonic()
                first_failure = now if first_failure is None else first_failure
                attempt += 1
                delay = self.policy.next_delay(error, attempt, now - first_failure, merged=merged)
                if delay is None:
                    raise
                self.stats.retries += 1
                logger.debug(
                    "retry %d of %s in %.2fs: %s", attempt, request.get("id"), delay, error.message
                )
                await asyncio.sleep(delay)
            else:
                self.endpoints.succeeded(client)
                return response


async def run_job(
    options: InferOptions, reporter: Reporter | None = None, tick: float = 0.25
) -> JobStats:
    """Run a job to the end; raises ``JobInterrupted`` if cancelled (after saving progress)."""
    reporter = reporter or NullReporter()
    writer: Writer
    if options.retry_failed:
        writer = FailedLinesWriter(options.output_path, options.input_path)
    else:
        writer = OrderedWriter(
            options.output_path,
            options.input_path,
            resume=options.resume,
            overwrite=options.overwrite,
        )
    stats = JobStats(skipped=writer.start, failed_before=writer.errors_before)
    clients = [make_client(url, options) for url in options.urls]
    job = _Job(options, writer, clients, stats)
    complete = False

    async def count() -> None:
        known = writer.lines_to_send
        stats.total = (
            known if known is not None else await asyncio.to_thread(count_lines, options.input_path)
        )

    async def report() -> None:
        while True:
            reporter.tick(stats)
            await asyncio.sleep(tick)

    side_tasks = [asyncio.create_task(count()), asyncio.create_task(report())]
    tasks = [asyncio.create_task(job.produce())] + [
        asyncio.create_task(job.work()) for _ in range(job.workers)
    ]
    try:
        await asyncio.gather(*tasks)
        complete = True
    except asyncio.CancelledError:
        written = stats.skipped + stats.done
        raise JobInterrupted(
            f"interrupted after {written} lines written to {options.output_path}", stats
        ) from None
    finally:
        for task in tasks + side_tasks:
            task.cancel()
        await asyncio.gather(*tasks, *side_tasks, return_exceptions=True)
        stats.finished = time.monotonic()
        writer.close(complete=complete)
        reporter.close(stats)
        for client in clients:
            await client.aclose()
    return stats
