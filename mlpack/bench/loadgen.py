"""A low-overhead load generator for Open Inference Protocol servers.

Two ways to drive a server:

- closed loop: N connections each keep one request outstanding (``concurrency``), for a
  duration or a request count; throughput follows the server.
- open loop: requests are *scheduled* at a fixed ``rate`` whatever the server does, and each
  latency is measured from its scheduled time, so a slow server shows up in the tail instead
  of silently lowering the load (no coordinated omission). At most ``concurrency``
  connections are opened; requests waiting for one count towards their latency, and past
  ``MAX_BACKLOG_PER_CONNECTION`` waiting requests per connection a request is dropped
  (error kind ``dropped``) rather than queued without bound.

Bodies are sent round-robin. A warm-up phase runs first and is drained completely before
measuring starts, so server-side counters read between the two phases match the measured
requests exactly.

Library use::

    result = await run_load(HttpDriver.from_url(url), [body], concurrency=32, duration=10)
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from .drivers import Connection, Driver, GrpcDriver, HttpDriver

T = TypeVar("T")

__all__ = [
    "Body",
    "Connection",
    "Driver",
    "GrpcDriver",
    "HttpDriver",
    "LoadProgress",
    "LoadResult",
    "error_kind",
    "install_uvloop",
    "percentile",
    "run_load",
]

MAX_ERROR_SAMPLES = 5
MAX_BACKLOG_PER_CONNECTION = 4


@dataclasses.dataclass(frozen=True)
class Body:
    """One request body, the rows (batch items) it carries and headers of its own."""

    data: bytes
    rows: int = 1
    headers: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass
class LoadProgress:
    """Live counters of the running phase (read by a progress view; written by the run)."""

    phase: str = "idle"  # "warmup", "measure" or "idle"
    completed: int = 0
    errors: int = 0
    started_at: float = 0.0


@dataclasses.dataclass
class LoadResult:
    """Summary of one load run (latencies in milliseconds)."""

    concurrency: int
    requests: int
    errors: int
    elapsed_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    loadgen_cpu: float  # process CPU seconds / wall seconds while measuring (1.0 = one core)
    error_samples: list[str] = dataclasses.field(default_factory=list)
    p95_ms: float = 0.0
    rows: int = 0  # rows (batch items) in successful requests
    rows_per_s: float = 0.0
    error_kinds: dict[str, int] = dataclasses.field(default_factory=dict)
    mode: str = "closed"
    rate: float | None = None  # open loop: requests per second asked for
    scheduled: int = 0  # open loop: requests due in the measured window
    sent: int = 0  # requests actually sent in the measured window
    send_lag_p99_ms: float = 0.0  # open loop: how late sends left against their schedule

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        mode = f"rate={self.rate:g}/s" if self.mode == "open" else f"c={self.concurrency}"
        return (
            f"{mode} n={self.requests} err={self.errors} "
            f"{self.rps:,.0f} req/s  {self.rows_per_s:,.0f} rows/s  p50 {self.p50_ms:.2f} ms  "
            f"p90 {self.p90_ms:.2f} ms  p99 {self.p99_ms:.2f} ms  "
            f"loadgen CPU {self.loadgen_cpu:.0%}"
        )


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 for an empty sequence)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(pct / 100.0 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def error_kind(message: str) -> str:
    """A short kind for an error description: ``HTTP 503``, ``gRPC UNAVAILABLE``, ``timeout``..."""
    if message.startswith(("HTTP ", "gRPC ")):
        return message.split(":", 1)[0]
    if "timed out" in message:
        return "timeout"
    if message.startswith("dropped"):
        return "dropped"
    return message.split(":", 1)[0] or "error"


class _Run:
    """Shared state of one phase: the ticket counter, the clock and the samples."""

    def __init__(
        self, payloads: list[Any], rows: list[int], total: int | None, progress: LoadProgress
    ) -> None:
        self.payloads = payloads
        self.rows = rows
        self.next_payload = itertools.cycle(range(len(payloads))).__next__
        self.total = total
        self.issued = 0
        self.deadline = math.inf
        self.latencies_ns: list[int] = []
        self.lags_ns: list[int] = []
        self.rows_ok = 0
        self.errors = 0
        self.kinds: Counter[str] = Counter()
        self.error_samples: list[str] = []
        self.last_done = 0.0
        self.progress = progress

    def take(self) -> bool:
        if self.total is not None:
            if self.issued >= self.total:
                return False
            self.issued += 1
            return True
        if time.perf_counter() < self.deadline:
            self.issued += 1
            return True
        return False

    def ok(self, latency_ns: int, index: int, done_ns: int) -> None:
        self.latencies_ns.append(latency_ns)
        self.rows_ok += self.rows[index]
        self.last_done = done_ns / 1e9
        self.progress.completed += 1

    def error(self, message: str, done_ns: int) -> None:
        self.errors += 1
        self.kinds[error_kind(message)] += 1
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(message)
        self.last_done = done_ns / 1e9
        self.progress.completed += 1
        self.progress.errors += 1


async def _send(
    driver: Driver, conn: Connection | None, payload: Any
) -> tuple[Connection | None, str | None]:
    """Send on ``conn`` (connecting first when None); a broken connection comes back as None."""
    try:
        if conn is None:
            conn = await driver.connect()
        return conn, await conn.send(payload)
    except (OSError, ConnectionError) as exc:
        if conn is not None:
            conn.close()
        return None, f"{type(exc).__name__}: {exc}"


async def _closed_worker(driver: Driver, run: _Run, conn: Connection | None) -> None:
    perf_ns = time.perf_counter_ns
    try:
        while run.take():
            index = run.next_payload()
            t0 = perf_ns()
            conn, err = await _send(driver, conn, run.payloads[index])
            t1 = perf_ns()
            if err is None:
                run.ok(t1 - t0, index, t1)
            else:
                run.error(err, t1)
                if conn is None:
                    await asyncio.sleep(0.01)  # don't spin on a dead server
    finally:
        if conn is not None:
            conn.close()


class _Pool:
    """Connections for the open loop: reuse idle ones, open up to ``limit``, else wait."""

    def __init__(self, driver: Driver, conns: list[Connection], limit: int) -> None:
        self.driver = driver
        self.idle: asyncio.Queue[Connection | None] = asyncio.Queue()
        for conn in conns:
            self.idle.put_nowait(conn)
        self.opened = len(conns)
        self.limit = limit

    async def acquire(self) -> Connection | None:
        if self.idle.empty() and self.opened < self.limit:
            self.opened += 1
            return None  # the sender connects (errors are counted like any other)
        return await self.idle.get()

    def release(self, conn: Connection | None) -> None:
        self.idle.put_nowait(conn)  # None: a broken slot, reconnected by its next user


async def _open_one(driver: Driver, run: _Run, pool: _Pool, index: int, due_ns: int) -> None:
    conn = await pool.acquire()
    conn, err = await _send(driver, conn, run.payloads[index])
    pool.release(conn)
    done = time.perf_counter_ns()
    if err is None:
        run.ok(done - due_ns, index, done)
    else:
        run.error(err, done)


async def _open_loop(driver: Driver, run: _Run, pool: _Pool, rate: float, count: int) -> int:
    """Schedule ``count`` requests ``1/rate`` apart from now; return how many were sent."""
    perf_ns = time.perf_counter_ns
    interval_ns = 1e9 / rate
    start = perf_ns()
    backlog_limit = MAX_BACKLOG_PER_CONNECTION * pool.limit
    pending: set[asyncio.Task[None]] = set()
    sent = 0
    for i in range(count):
        due = start + int(i * interval_ns)
        now = perf_ns()
        if due > now:
            await asyncio.sleep((due - now) / 1e9)
            now = perf_ns()
        run.lags_ns.append(max(0, now - due))
        if len(pending) >= backlog_limit:
            run.error(f"dropped: more than {backlog_limit} requests waiting for a connection", now)
            continue
        task = asyncio.create_task(_open_one(driver, run, pool, run.next_payload(), due))
        pending.add(task)
        task.add_done_callback(pending.discard)
        sent += 1
    if pending:
        await asyncio.gather(*pending)
    return sent


def _summarise(run: _Run, concurrency: int, wall0: float, wall1: float, cpu: float) -> LoadResult:
    lat_ms = sorted(ns / 1e6 for ns in run.latencies_ns)
    n_ok = len(lat_ms)
    end = max(run.last_done, wall0)
    elapsed = max(end - wall0, 1e-9)
    lags = sorted(ns / 1e6 for ns in run.lags_ns)
    return LoadResult(
        concurrency=concurrency,
        requests=n_ok + run.errors,
        errors=run.errors,
        elapsed_s=elapsed,
        rps=n_ok / elapsed,
        p50_ms=percentile(lat_ms, 50),
        p90_ms=percentile(lat_ms, 90),
        p99_ms=percentile(lat_ms, 99),
        mean_ms=(sum(lat_ms) / n_ok) if n_ok else 0.0,
        max_ms=lat_ms[-1] if lat_ms else 0.0,
        loadgen_cpu=cpu / max(wall1 - wall0, 1e-9),
        error_samples=run.error_samples,
        p95_ms=percentile(lat_ms, 95),
        rows=run.rows_ok,
        rows_per_s=run.rows_ok / elapsed,
        error_kinds=dict(run.kinds),
        sent=run.issued,
        send_lag_p99_ms=percentile(lags, 99),
    )


async def _phase(
    driver: Driver,
    conns: list[Connection],
    payloads: list[Any],
    rows: list[int],
    concurrency: int,
    duration: float | None,
    requests: int | None,
    rate: float | None,
    progress: LoadProgress,
) -> tuple[LoadResult, list[Connection]]:
    run = _Run(payloads, rows, requests, progress)
    wall0 = time.perf_counter()
    cpu0 = time.process_time()
    progress.completed = progress.errors = 0
    progress.started_at = wall0
    if rate is None:
        if requests is None:
            assert duration is not None
            run.deadline = wall0 + duration
        workers = [asyncio.create_task(_closed_worker(driver, run, c)) for c in conns]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
        left: list[Connection] = []  # closed by the workers
        scheduled = run.issued
    else:
        count = requests if requests is not None else int((duration or 0.0) * rate)
        pool = _Pool(driver, conns, concurrency)
        sent = await _open_loop(driver, run, pool, rate, count)
        run.issued = sent
        scheduled = count
        left = []
        while not pool.idle.empty():
            conn = pool.idle.get_nowait()
            if conn is not None:
                left.append(conn)
    wall1 = time.perf_counter()
    result = _summarise(run, concurrency, wall0, wall1, time.process_time() - cpu0)
    if rate is not None:
        result.mode, result.rate, result.scheduled = "open", rate, scheduled
        result.elapsed_s = max(result.elapsed_s, count / rate if count else 0.0)
        result.rps = (result.requests - result.errors) / max(result.elapsed_s, 1e-9)
        result.rows_per_s = result.rows / max(result.elapsed_s, 1e-9)
    else:
        result.scheduled = scheduled
    return result, left


async def run_load(
    driver: Driver,
    bodies: Sequence[bytes | Body],
    concurrency: int = 1,
    duration: float | None = 10.0,
    requests: int | None = None,
    warmup: float = 0.0,
    rate: float | None = None,
    progress: LoadProgress | None = None,
    on_measure: Callable[[], Awaitable[None]] | None = None,
) -> LoadResult:
    """Drive ``driver`` closed-loop (or open-loop at ``rate``) and summarise the measured phase.

    Parameters:
        driver: how to reach the server (``HttpDriver``, ``GrpcDriver``).
        bodies: request bodies (bytes, or ``Body`` with rows and headers), sent round-robin.
        concurrency: closed loop: connections each with one request outstanding;
            open loop: most connections opened.
        duration: measured seconds (ignored when ``requests`` is given).
        requests: measure exactly this many requests instead of a duration.
        warmup: seconds of the same load before measuring; drained before measuring starts.
        rate: requests per second for an open loop (None: closed loop).
        progress: counters updated while running, for a live view.
        on_measure: awaited between the drained warm-up and the measured phase
            (e.g. to read the server's statistics).
    """
    if not bodies:
        raise ValueError("need at least one request body")
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    if requests is None and (duration is None or duration <= 0):
        raise ValueError("give a positive duration or a request count")
    if requests is not None and requests < 1:
        raise ValueError("the request count must be >= 1")
    if rate is not None and not (rate > 0 and math.isfinite(rate)):
        raise ValueError("the rate must be a positive number of requests per second")
    items = [b if isinstance(b, Body) else Body(b) for b in bodies]
    payloads = [driver.prepare(b.data, b.headers) for b in items]
    rows = [b.rows for b in items]
    progress = progress or LoadProgress()

    # Connect before the clock starts, so connection set-up is not measured.
    first = concurrency if rate is None else min(concurrency, 8)
    conns: list[Connection] = list(await asyncio.gather(*(driver.connect() for _ in range(first))))
    try:
        if warmup > 0:
            progress.phase = "warmup"
            _, conns = await _phase(
                driver, conns, payloads, rows, concurrency, warmup, None, rate, progress
            )
            if rate is None:  # the closed-loop workers closed theirs: open afresh
                conns = list(await asyncio.gather(*(driver.connect() for _ in range(first))))
        if on_measure is not None:
            await on_measure()
        progress.phase = "measure"
        result, conns = await _phase(
            driver, conns, payloads, rows, concurrency, duration, requests, rate, progress
        )
    finally:
        progress.phase = "idle"
        for conn in conns:
            conn.close()
    return result


def install_uvloop() -> bool:
    """Use uvloop for new event loops when available (lower client CPU); return whether it is."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def run(main: Awaitable[T], transports: Sequence[str] = ("rest",)) -> T:
    """Run ``main`` on a fresh event loop: uvloop (lower client CPU) unless gRPC is used.

    grpc.aio needs the default asyncio loop; the choice is local to this call (no global
    event-loop policy is changed).
    """
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if "grpc" not in transports:
        try:
            import uvloop

            factory = uvloop.new_event_loop
        except ImportError:
            pass
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)  # type: ignore[arg-type]
