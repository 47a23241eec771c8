"""Several front-end processes on shared ports, under one supervisor (``http_workers``).

With ``http_workers`` (``mlpack start --frontends N``) above 1, the process ``mlpack
start`` runs becomes a supervisor; it parses no request itself. It:

* reserves the REST and gRPC ports (bound alone, so a busy port fails at once; then opened
  to SO_REUSEPORT peers; never listening) and starts N front-end processes (``spawn``).
  Each is a full ``MLPackServer``: it binds both ports with SO_REUSEPORT (gRPC:
  ``grpc.so_reuseport``), loads the models, and serves the whole data plane. The kernel
  spreads connections over the front-ends (per connection, not per request).
* replaces a front-end that dies, with backoff (0.5 s doubling up to
  ``worker_max_restart_backoff``). Front-ends after the first, and every replacement, open
  their ports only once their models are loaded, so no connection waits on a loading one.
* applies the repository API everywhere: a front-end receiving load/unload sends it here
  (``server/frontend.py``); the calls are applied in order, in every live front-end, and
  the caller is answered when all have (the first error, if any). The last call per model
  is also kept, in order; a replacement starts from it (a model it names is not loaded
  at startup but left as that call did: loaded under its generation, or unloaded), so
  every front-end shows the same index and an unloaded model is never served again.
* serves the metrics port: one scrape sums every front-end's in-memory families (same
  names and labels as with one front-end) plus the multiprocess folder they all write to,
  and adds ``frontend_requests_total{frontend}`` (REST requests + gRPC calls per
  front-end), ``frontend_ready{frontend}`` and ``frontend_restarts_total``. Families are
  also collected every ``frontend_collect_interval`` seconds (each front-end answering
  within ``frontend_collect_timeout``), so a front-end that dies leaves its counters in
  the sum (``FrontendCollector.retire``): they never go back.
* answers ``Gather`` (a front-end's ``/stats`` or dashboard data) by asking every live
  front-end (each within ``frontend_gather_timeout``) and returning their answers, with
  the last collected statistics and dashboard buckets of the front-ends that died
  (``server/frontend_figures.py``; ``server/frontend_stats.py`` merges them).
* passes SIGHUP on (certificate reload, with TLS); on SIGTERM/SIGINT, passes SIGTERM to
  every front-end; each drains as a single server
  does (not ready, ``drain_delay``, in-flight requests finish within ``graceful_timeout``).

Worker pools are the supervisor's (``server/pool_host.py``), one copy for every front-end:
the default pool, each model's own or group pool (with its zygote), each environment's
pool. The supervisor spawns, pings, replaces and recycles their workers, rolls a zygote
pool's workers after a load, and stops them after the front-ends have drained. Each
worker also listens on a Unix socket in a private run folder (``tempfile.mkdtemp``, 0700,
removed at shutdown) and accepts one data connection per front-end (at most twice the
front-ends plus two open at once, ``engine/workers/connections.py``). A front-end loading a pooled
model asks the supervisor over this link (``PoolAcquire``): the model is loaded into its
pool once per name and generation (startup, or the number of the repository call),
however many front-ends ask, and unloaded when the last front-end releases it (or dies
holding it). The supervisor announces each pool's workers (socket, pid, models) to every
front-end at start and after every change (``PoolWorkers``); each front-end dispatches
least-busy over its own connections (``RemotePool``) with at most
``worker_pipeline_depth`` calls of its own per worker, so a worker holds at most
front-ends x depth calls. A worker that dies fails each front-end's calls on it at once
(503); a front-end kills a worker whose call runs past twice its deadline (by pid) and the
supervisor replaces it. In-process models (``parallel_workers`` 0) load in every front-end.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import itertools
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import tracing
from ..errors import MLPackError, ModelNotFound
from ..settings import ModelSettings, Settings
from .frontend_figures import KeptFigures
from .frontend_link import (
    Apply,
    Collect,
    ControlLink,
    Done,
    FamilySnapshot,
    FrontendRole,
    Gather,
    PoolAcquire,
    PoolAnswer,
    PoolRelease,
    PoolWorkers,
    Ready,
    Snapshot,
)
from .frontend_metrics import FrontendCollector
from .frontend_stats import gather
from .metrics import MetricsFolder
from .pool_host import PoolHost

logger = logging.getLogger("mlpack.frontends")

# A repository load/unload waits this long for each front-end (model loads can be slow).
REPOSITORY_CALL_TIMEOUT = 600.0
# A front-end that served this long before dying restarts without backoff.
HEALTHY_AFTER = 10.0
FIRST_BACKOFF = 0.5
STARTUP_FAILURE = 3  # a front-end's exit code when its models failed with exit_on_error


def frontend_count(value: int | str) -> int:
    """``http_workers`` as a number of processes (``auto``: the CPU cores this may use)."""
    if value == "auto":
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not Linux
            return max(1, os.cpu_count() or 1)
    return int(value)


@dataclass
class _Slot:
    """One front-end position: its current process and link."""

    index: int
    process: Any = None
    link: ControlLink | None = None
    pid: int = 0
    ready: bool = False
    started: float = 0.0
    restarts: int = 0
    families: list[FamilySnapshot] = field(default_factory=list)
    families_call: int = 0  # the Collect call whose answer ``families`` holds
    figures: KeptFigures = field(default_factory=KeptFigures)  # its stats, dashboard
    reader: asyncio.Task[None] | None = None

    def open_link(self) -> ControlLink | None:
        """Its link while open (None once its process has gone or before it starts)."""
        link = self.link
        return link if link is not None and not link.closed.is_set() else None


class FrontendSupervisor:
    """Runs N front-end processes on shared ports and coordinates them.

    Parameters:
        settings: the server's settings (ports, metrics, drain and restart settings).
        models: the models found at startup (every front-end loads them).
        repository_root: folder the front-ends re-scan for the repository API.
        count: number of front-end processes.
        log_options: ``configure_logging`` arguments, applied again in each front-end.
    """

    def __init__(
        self,
        settings: Settings,
        models: list[ModelSettings],
        repository_root: Path | None,
        count: int,
        log_options: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.models = models
        self.repository_root = repository_root
        self.count = count
        self.log_options = log_options or {}
        self.slots = [_Slot(i) for i in range(count)]
        self._context = multiprocessing.get_context("spawn")
        self._ops: dict[str, tuple[str, int]] = {}  # name -> (last action, its generation)
        self._generations = itertools.count(1)  # 0: the models found at startup
        self.pools: PoolHost | None = None  # the shared worker pools (when models use any)
        self._ops_lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._stopping = False
        self.exit_code = 0
        self._child_settings = settings
        # Sums the front-ends' families; keeps what dead ones counted.
        self.collector = FrontendCollector(self.slots)
        # What dead front-ends' statistics and dashboard had counted (added to ``Gather``).
        self.retained = KeptFigures()

    def request_stop(self) -> None:
        self._stop.set()

    # -- lifecycle ------------------------------------------------------------------
    async def serve(self) -> None:
        from .app import start_tracing
        from .sockets import bind_socket, reserve_port

        settings = self.settings
        rest = reserve_port(settings.host, settings.http_port, "REST")
        grpc = reserve_port(settings.host, settings.grpc_port, "gRPC")
        folder: MetricsFolder | None = None
        tracing_on = False
        metrics_socket: socket.socket | None = None
        metrics_server: Any = None
        metrics_task: asyncio.Task[None] | None = None
        collecting: asyncio.Task[None] | None = None
        try:
            if settings.metrics_endpoint:
                metrics_socket = bind_socket(settings.host, settings.metrics_port, "metrics")
                folder = MetricsFolder(settings.metrics_dir).prepare()
            self._child_settings = settings.model_copy(
                update={
                    "http_port": rest.getsockname()[1],
                    "grpc_port": grpc.getsockname()[1],
                    "metrics_dir": folder.path if folder else None,
                    "http_workers": 1,
                }
            )
            # Workers inherit tracing from the process that starts them: the supervisor.
            tracing_on = start_tracing(settings)
            self.pools = PoolHost(settings, self.models, self.repository_root, self.count)
            self.pools.announce = self._announce
            await self.pools.start()  # before front-ends: their loads need the pools
            if folder is not None and metrics_socket is not None:
                metrics_server = self._metrics_server(folder)
                metrics_task = asyncio.create_task(metrics_server.serve(sockets=[metrics_socket]))
            # Metrics or not: statistics and the dashboard keep a dead front-end's figures.
            collecting = asyncio.create_task(self._collect_every())
            logger.info(
                "%d front-end processes on REST %s:%s and gRPC %s:%s (SO_REUSEPORT)",
                self.count,
                settings.host,
                self._child_settings.http_port,
                settings.host,
                self._child_settings.grpc_port,
            )
            with self._signals():
                keepers = [asyncio.create_task(self._keep(slot)) for slot in self.slots]
                await self._stop.wait()
                self._stopping = True
                await self._shutdown()
                for keeper in keepers:
                    keeper.cancel()
                await asyncio.gather(*keepers, return_exceptions=True)
            if collecting is not None:
                collecting.cancel()
            if metrics_server is not None and metrics_task is not None:
                metrics_server.should_exit = True
                await metrics_task
            logger.info("stopped")
        finally:
            rest.close()
            grpc.close()
            if self.pools is not None:  # the front-ends have exited: stop shared workers
                await self.pools.close()  # and remove the run folder
            if tracing_on:
                tracing.shutdown()
            if folder is not None:
                folder.close()

    async def _keep(self, slot: _Slot) -> None:
        """Start the slot's front-end, and again whenever it dies (with backoff)."""
        backoff = FIRST_BACKOFF
        late = slot.index > 0
        while not self._stopping:
            await self._spawn(slot, late)
            code = await self._wait_exit(slot)
            if self._stopping:
                return
            served = time.monotonic() - slot.started
            was_ready = slot.ready
            slot.ready, slot.link = False, None
            self._retire(slot)
            if self.pools is not None:  # what its runners held in shared pools
                await self.pools.release_frontend(slot.pid)
            if code == STARTUP_FAILURE and not was_ready:
                logger.error(
                    "front-end %d failed to start (exit code %s): stopping", slot.index, code
                )
                self.exit_code = STARTUP_FAILURE
                self.request_stop()
                return
            if was_ready and served >= HEALTHY_AFTER:
                backoff = FIRST_BACKOFF
            logger.warning(
                "front-end %d (pid %d) exited with code %s; a replacement starts in %.1fs",
                slot.index,
                slot.pid,
                code,
                backoff,
            )
            slot.restarts += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self._stop.wait()
            backoff = min(backoff * 2, self.settings.worker_max_restart_backoff)
            late = True

    async def _spawn(self, slot: _Slot, late: bool) -> None:
        parent_end, child_end = socket.socketpair()
        link = ControlLink(on_message=self._on_message)
        link.handler = functools.partial(self._handle, link)
        async with self._ops_lock:  # a call from now on reaches it; earlier ones replay
            ops = [(action, name, gen) for name, (action, gen) in self._ops.items()]
            role = FrontendRole(slot.index, child_end, ops, late)
            process = self._context.Process(
                target=run_frontend,
                args=(
                    self._child_settings,
                    self.models,
                    self.repository_root,
                    role,
                    self.log_options,
                ),
                name=f"mlpack-frontend-{slot.index}",
            )
            try:
                process.start()
            finally:
                child_end.close()
            await link.open(parent_end)
            if self.pools is not None:  # the shared pools as they are now
                for snapshot in self.pools.snapshots():
                    link.send(snapshot)
            slot.process, slot.link, slot.pid = process, link, process.pid or 0
            slot.started, slot.ready = time.monotonic(), False
        slot.reader = asyncio.create_task(link.run())
        logger.info("front-end %d starting (pid %d)", slot.index, slot.pid)

    async def _wait_exit(self, slot: _Slot) -> int | None:
        """Wait for the slot's process to end (its link closes first); its exit code."""
        assert slot.link is not None
        await slot.link.closed.wait()
        self._retire_figures(slot)  # at once: no answer leaves them out meanwhile
        process = slot.process
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, process.join)
        return process.exitcode  # type: ignore[no-any-return]

    def _retire_figures(self, slot: _Slot) -> None:
        """A dead front-end's counters, statistics and dashboard buckets stay in the sum
        and its in-memory gauges leave (its link has closed: no later collect answer of it
        is kept)."""
        self.collector.retire(slot)
        slot.families_call = 0
        figures, slot.figures = slot.figures, KeptFigures()
        self.retained.add(figures)

    def _retire(self, slot: _Slot) -> None:
        """A dead front-end's live gauges leave the multiprocess folder."""
        path = self._child_settings.metrics_dir
        if path:
            with contextlib.suppress(Exception):
                MetricsFolder(path).mark_process_dead(slot.pid)

    async def _shutdown(self) -> None:
        """SIGTERM every front-end; each drains; SIGKILL what outlives the bound."""
        settings = self.settings
        processes = [slot.process for slot in self.slots if slot.process is not None]
        logger.info("shutting down: draining %d front-end(s)", len(processes))
        for process in processes:
            with contextlib.suppress(ProcessLookupError, TypeError):
                os.kill(process.pid, signal.SIGTERM)
        bound = (settings.drain_delay or 0.0) + settings.graceful_timeout + 10.0
        loop = asyncio.get_running_loop()
        joins = [loop.run_in_executor(None, process.join, bound) for process in processes]
        await asyncio.gather(*joins)
        for process in processes:
            if process.exitcode is None:
                logger.warning("front-end pid %d did not stop in %.0fs: killed", process.pid, bound)
                process.kill()
                await loop.run_in_executor(None, process.join, 5)

    # -- control calls ----------------------------------------------------------------
    def _on_message(self, message: Any) -> None:
        if isinstance(message, Ready):
            slot = self.slots[message.index]
            slot.ready = True
            logger.info("front-end %d ready (pid %d)", message.index, message.pid)
            if all(s.ready for s in self.slots):
                logger.info("all %d front-ends ready", self.count)
                for line in self.pools.describe() if self.pools is not None else []:
                    logger.info("shared by every front-end: %s", line)

    async def _handle(self, origin: ControlLink, message: Any) -> Any:
        if isinstance(message, Collect):  # front-ends do not ask this; answer empty
            return Snapshot(message.call_id)
        if isinstance(message, (PoolAcquire, PoolRelease)):
            return await self._pool_call(origin, message)
        if isinstance(message, Gather):
            live = [(s.index, link) for s in self.slots if (link := s.open_link()) is not None]
            gathered = await gather(message, live, self.settings.frontend_gather_timeout)
            retained = self.retained.answer(message.query)
            return dataclasses.replace(gathered, retained=retained, retired=self.retained.retired)
        async with self._ops_lock:
            links = [link for s in self.slots if (link := s.open_link()) is not None]
            generation = next(self._generations)
            errors = await asyncio.gather(
                *(self._apply_on(link, message.action, message.name, generation) for link in links)
            )
            error = next((e for e in errors if e is not None), None)
            # Kept for replacements to replay, except a name no front-end knows (so the list
            # is bounded by the models that exist, whatever names callers try).
            if not isinstance(error, ModelNotFound):
                self._ops.pop(message.name, None)
                self._ops[message.name] = (message.action, generation)
        logger.info(
            "repository %s of model '%s' applied in %d front-end(s)%s",
            message.action,
            message.name,
            len(links),
            f": {error.message}" if error else "",
        )
        return Done(message.call_id, error)

    async def _pool_call(
        self, origin: ControlLink, message: PoolAcquire | PoolRelease
    ) -> PoolAnswer:
        """A front-end's runner loads (or releases) a model in a shared pool."""
        if self.pools is None:
            return PoolAnswer(message.call_id, error=MLPackError("no shared pools here"))
        if isinstance(message, PoolRelease):
            return await self.pools.release(message)
        answer = await self.pools.acquire(message)
        if answer.key and origin.closed.is_set():  # it died meanwhile: it holds nothing
            await self.pools.release(PoolRelease(0, message.pid, message.user, answer.key))
        if answer.pool:  # the pool's workers reach the front-end before the answer
            with contextlib.suppress(ConnectionError):
                origin.send(self.pools.snapshot(answer.pool))
        return answer

    def _announce(self, message: PoolWorkers) -> None:
        """A shared pool changed: tell every front-end."""
        for slot in self.slots:
            link = slot.open_link()
            if link is not None:
                with contextlib.suppress(ConnectionError):
                    link.send(message)

    async def _apply_on(
        self, link: ControlLink, action: str, name: str, generation: int
    ) -> MLPackError | None:
        try:
            async with asyncio.timeout(REPOSITORY_CALL_TIMEOUT):
                answer = await link.call(Apply(link.next_id(), action, name, generation))
        except ConnectionError:
            return None  # it died: its replacement replays the call
        except TimeoutError:
            return MLPackError(f"a front-end did not {action} model '{name}' in time")
        error: MLPackError | None = answer.error
        return error

    async def collect(self) -> None:
        """Fetch every live front-end's metric families (those that answer in time; one
        that does not keeps its last families, so its counters stay in the sum)."""

        async def one(slot: _Slot) -> None:
            link = slot.open_link()
            if link is None:
                return
            call = Collect(link.next_id(), slot.figures.since)
            try:
                async with asyncio.timeout(self.settings.frontend_collect_timeout):
                    answer = await link.call(call)
            except (ConnectionError, TimeoutError):
                return
            # Still the same process (not retired meanwhile), and no newer answer kept
            # (a scrape and the periodic collect may overlap): counters never step back.
            fresh = call.call_id > slot.families_call and not link.closed.is_set()
            if slot.link is link and fresh:
                slot.families, slot.families_call = answer.families, call.call_id
                if answer.figures is not None:
                    slot.figures.update(answer.figures)

        await asyncio.gather(*(one(slot) for slot in self.slots))

    async def _refresh(self) -> None:
        """Before a scrape: the front-ends' families and the shared workers' status."""
        if self.pools is None:
            await self.collect()
            return
        timeout = self.settings.frontend_collect_timeout
        await asyncio.gather(self.collect(), self.pools.refresh(timeout))

    async def _collect_every(self) -> None:
        """Collect every ``frontend_collect_interval`` seconds, between scrapes too: a
        front-end that dies loses only what it counted since (it cannot be asked then)."""
        while True:
            await asyncio.sleep(self.settings.frontend_collect_interval)
            await self.collect()

    def _metrics_server(self, folder: MetricsFolder) -> Any:
        from .app import embedded_metrics_server
        from .auth import AccessPolicy
        from .autoscaling import PoolHealthCollector
        from .frontend_metrics import refreshing
        from .guards import metrics_guards
        from .metrics import build_metrics_app

        settings = self.settings
        pools = PoolHealthCollector(self.pools.pools if self.pools is not None else list)
        endpoint = settings.metrics_endpoint or "/metrics"
        app: Any = build_metrics_app(folder, endpoint, self.collector, pools)
        app = refreshing(app, self._refresh)
        app = metrics_guards(app, settings, AccessPolicy.from_settings(settings))
        return embedded_metrics_server(app)

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.request_stop)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
        if self.settings.tls_cert_file:  # front-ends reload their certificates on SIGHUP
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signal.SIGHUP, self._forward, signal.SIGHUP)
                installed.append(signal.SIGHUP)
        try:
            yield
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    def _forward(self, sig: signal.Signals) -> None:
        for slot in self.slots:
            if slot.process is not None and slot.process.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.process.pid, sig)


def run_supervisor(
    settings: Settings,
    models: list[ModelSettings],
    repository_root: Path | None,
    count: int,
    log_options: dict[str, Any],
) -> int:
    """Run the supervisor to completion; its exit code (3: a front-end failed to start)."""
    from .app import run_server

    supervisor = FrontendSupervisor(settings, models, repository_root, count, log_options)
    run_server(supervisor)
    return supervisor.exit_code


def run_frontend(
    settings: Settings,
    models: list[ModelSettings],
    repository_root: Path | None,
    role: FrontendRole,
    log_options: dict[str, Any],
) -> None:
    """A front-end process's entry point (module level, explicit arguments: ``spawn``)."""
    import sys

    from ..compat import install_mlserver_compat
    from .app import MLPackServer, run_server
    from .logging import configure_logging

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides; SIGTERM drains
    configure_logging(**log_options)
    install_mlserver_compat()
    server = MLPackServer(settings, models, repository_root, role=role)
    try:
        run_server(server)
    except MLPackError as error:
        logging.getLogger("mlpack.server").error("front-end %d: %s", role.index, error.message)
        sys.exit(STARTUP_FAILURE)
