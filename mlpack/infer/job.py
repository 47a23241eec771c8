"""One batch job: read lines, send them (merged, retried, spread over servers), write in order."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import orjson

from ..client.errors import ClientError, ServerError
from ..errors import JobInterrupted as JobInterrupted  # in the error tree; re-exported
from .batching import SplitError, merge, merge_key, rows_of, split
from .output import OrderedWriter
from .progress import JobStats, NullReporter, Reporter
from .reader import InvalidLine, Line, count_lines, iter_lines, parse_line
from .retry import Endpoints, RetryPolicy, blames_server

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
    retries: int = 3
    batch_size: int = 1
    binary: bool = False
    transport: Transport = "rest"
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 60.0
    batch_interval: float = 0.0
    batch_jitter: float = 0.0
    use_ssl: bool = False
    insecure: bool = False
    resume: bool = False
    overwrite: bool = False
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
        )
    from ..client.rest import AsyncClient

    return AsyncClient(
        url,
        timeout=options.timeout,
        headers=options.headers,
        binary=options.binary,
        use_ssl=options.use_ssl,
        verify=not options.insecure,
        max_connections=max(1, options.workers),
    )


def _record(payload: dict[str, Any]) -> bytes:
    return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"


def _error_record(
    index: int, request_id: str | None, reason: str, status: int | None = None
) -> bytes:
    payload: dict[str, Any] = {"id": request_id, "line": index + 1, "error": reason}
    if status is not None:
        payload["status"] = status
    return _record(payload)


Result = tuple[int, bytes, bytes | None]


class _Job:
    def __init__(
        self,
        options: InferOptions,
        writer: OrderedWriter,
        clients: list[InferClient],
        stats: JobStats,
    ) -> None:
        self.options = options
        self.writer = writer
        self.endpoints: Endpoints[InferClient] = Endpoints(clients)
        self.policy = RetryPolicy(retries=options.retries, base=options.backoff)
        self.stats = stats
        self.batch_size = max(1, options.batch_size)
        workers = max(1, options.workers)
        self.workers = workers
        self.queue: asyncio.Queue[list[Line] | None] = asyncio.Queue(maxsize=workers)
        # Lines read but not yet written: bounds memory whatever the file size.
        self.window = asyncio.Semaphore(max(64, 4 * workers * self.batch_size))

    # -- writing ---------------------------------------------------------------------------
    def _deliver(self, results: Sequence[Result]) -> None:
        for index, record, error in results:
            self.writer.put(index, record, error)
            if error is None:
                self.stats.ok += 1
            else:
                self.stats.failed += 1
        for _ in range(self.writer.drain()):
            self.window.release()

    # -- reading ---------------------------------------------------------------------------
    async def produce(self) -> None:
        batch: list[Line] = []
        key: Any = None
        for index, raw in iter_lines(self.options.input_path, self.writer.start):
            await self.window.acquire()
            try:
                line = parse_line(index, raw)
            except InvalidLine as invalid:
                logger.debug("line %d: %s", index + 1, invalid.reason)
                record = _error_record(
                    index, invalid.request_id, f"invalid request: {invalid.reason}"
                )
                self._deliver([(index, record, record)])
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
                    (line.index, _record(part), None)
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
            status = error.status if isinstance(error, ServerError) else None
            reason = error.reason if isinstance(error, ServerError) else error.message
            logger.info("line %d failed: %s", line.index + 1, error.message)
            record = _error_record(line.index, line.id, reason, status)
            return line.index, record, record
        response["id"] = line.id
        return line.index, _record(response), None

    async def _send(self, request: dict[str, Any], *, merged: bool) -> dict[str, Any]:
        options = self.options
        attempt = 0
        while True:
            client = self.endpoints.pick()
            try:
                response = await client.infer_json(
                    options.model_name, request, model_version=options.model_version
                )
            except ClientError as error:
                server_trouble = blames_server(error)
                if server_trouble:
                    self.endpoints.failed(client)
                # A merged batch is retried only for server trouble; other errors split it.
                if (
                    not error.retryable
                    or attempt >= self.policy.retries
                    or (merged and not server_trouble)
                ):
                    raise
                attempt += 1
                self.stats.retries += 1
                delay = self.policy.delay(attempt, error.retry_after)
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
    writer = OrderedWriter(
        options.output_path, options.input_path, resume=options.resume, overwrite=options.overwrite
    )
    stats = JobStats(skipped=writer.start)
    clients = [make_client(url, options) for url in options.urls]
    job = _Job(options, writer, clients, stats)
    complete = False

    async def count() -> None:
        stats.total = await asyncio.to_thread(count_lines, options.input_path)

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
