"""Assemble the engine and transports from settings; own start and stop order.

Start: bind every port → serve REST and gRPC (live, not yet ready) → load models
concurrently → ready. Stop (SIGTERM/SIGINT): not ready, still serving for ``drain_delay``
(``drain_before_stop``) → stop accepting and let in-flight requests finish on both
transports (``graceful_timeout``; what is left then is answered 503) → unload models.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import uvicorn

from .. import tracing
from ..engine.placement import RunnerPlacement
from ..engine.registry import ModelRegistry
from ..engine.workers.pool import PoolLimits
from ..engine.workers.remote import PoolBroker
from ..environments.extract import ExtractionLimits
from ..errors import InvalidSettings, MLPackError, ModelLoadError
from ..settings import ModelSettings, Settings
from .access_log import AccessLog
from .auth import AccessPolicy, describe_access
from .autoscaling import AutoscalingCollector
from .coalescing import CoalescingHttpToolsProtocol
from .frontend import FrontendPeer
from .frontend_link import FrontendRole
from .frontend_pools import FrontendPools
from .frontend_stats import AcrossFrontends
from .guards import inner_guards, metrics_guards, outer_guards
from .hints import TLSHint, ready_hint
from .limits import HttpLimits, connection_capacity, limited_protocol, raise_open_file_limit
from .logging import server_label
from .model_routes import model_route_paths, model_route_table, resolve_model_routes
from .observability import Observability
from .payload_log import PayloadLogger
from .rest import InferFastPath, build_rest_app
from .sockets import bind_socket
from .tls import ServerTLS
from .trace_context import TracingASGI

logger = logging.getLogger("mlpack.server")

# Seconds between shutdown's hard limit (503 for what is left) and the transports' own.
SHUTDOWN_MARGIN = 5.0


def extraction_limits(settings: Settings) -> ExtractionLimits:
    """The ``environment_max_*`` settings as the extractor's limits."""
    return ExtractionLimits(
        max_bytes=settings.environment_max_bytes,
        max_files=settings.environment_max_files,
        max_path_length=settings.environment_max_path_length,
        max_ratio=settings.environment_max_ratio,
    )


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the mlpack server coordinates shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        pass


class MLPackServer:
    """One server process: REST (and later gRPC, metrics) over one model registry.

    Parameters:
        settings: resolved server settings.
        models: the models found at startup.
        repository_root: folder re-scanned when a model is loaded through the API.
        role: set when this process is one front-end among several (``server/frontends.py``):
            ports shared with SO_REUSEPORT, no metrics port of its own, repository calls
            through the supervisor.
    """

    # Set by ``run_server``, which owns the process: freeze the heap once models are loaded
    # (``gc.freeze``). Off for servers embedded in another process (tests, notebooks).
    freeze_heap = False

    def __init__(
        self,
        settings: Settings,
        models: list[ModelSettings],
        repository_root: Path | None = None,
        role: FrontendRole | None = None,
    ) -> None:
        self.settings = settings
        self.role = role
        self.peer: FrontendPeer | None = None
        self.models = models
        # A front-end among several: pooled models run in the supervisor's shared pools.
        self.shared_pools: FrontendPools | None = None
        if role is not None:
            self.shared_pools = FrontendPools(pool_limits(settings))
        # engine: where each model runs (threads, worker pools, environment pools).
        self.runners = build_placement(settings, models, repository_root, self.shared_pools)
        self.registry = ModelRegistry(
            self.runners,
            repository_root=repository_root,
            strict_readiness=settings.strict_readiness,
            inference_timeout=settings.inference_timeout,
            stream_stall_timeout=settings.stream_stall_timeout,
        )
        self.registry.rescan = settings.repository_rescan
        # Who may call what (server/auth.py); key files are read here, once.
        self.access = AccessPolicy.from_settings(settings)
        self.tls = server_tls(settings)
        # Routes runtimes declare (MLflow's /invocations), for the models model_routes names.
        self.served_routes = resolve_model_routes(models, settings.model_routes)
        self.startup_error: MLPackError | None = None
        self.payload_log = PayloadLogger(settings.server_name)
        self.registry.payload_sink = self.payload_log
        self.observability = Observability(settings)
        self._stop = asyncio.Event()
        self._listeners: list[tuple[str, str]] = []
        self._http_port = 0
        self._uvicorn: _EmbeddedUvicorn | None = None

    def request_stop(self) -> None:
        """Begin a graceful shutdown (safe to call from a signal handler)."""
        self._stop.set()

    async def serve(
        self,
        http_socket: socket.socket | None = None,
        metrics_socket: socket.socket | None = None,
    ) -> None:
        settings = self.settings
        role = self.role
        if role is not None:  # the supervisor reserved the port; the kernel shares it out
            http_socket = bind_socket(
                settings.host,
                settings.http_port,
                "REST",
                reuse_port=True,
                listen=not role.listen_after_load,
            )
        http_socket = http_socket or bind_socket(settings.host, settings.http_port, "REST")
        logger.debug("settings: %s", settings.model_dump_json(exclude_none=True))
        observability = self.observability
        observability.shared_folder = role is not None
        if observability.metrics_enabled and metrics_socket is None and role is None:
            metrics_socket = bind_socket(settings.host, settings.metrics_port, "metrics")
        # The metrics folder is ready before any model (or worker process) starts.
        self.registry.observer = observability.start()
        tracing_on = start_tracing(settings)  # before workers start: they inherit it
        try:
            await self._serve(http_socket, metrics_socket)
        finally:
            observability.close()
            if tracing_on:
                tracing.shutdown()

    async def _serve(
        self, http_socket: socket.socket, metrics_socket: socket.socket | None
    ) -> None:
        settings = self.settings
        observability = self.observability
        app = build_rest_app(
            self.registry,
            server_name=settings.server_name,
            server_version=settings.server_version,
            root_path=settings.root_path,
            extra_routes=observability.routes(self.registry, model_route_paths(self.served_routes))
            + model_route_table(self.registry, self.served_routes),
        )
        open_files = raise_open_file_limit()
        limits = http_limits(settings, open_files)
        logger.info(
            "open-file limit %d: up to %d REST connections, %d requests in flight",
            open_files,
            limits.max_connections,
            limits.max_concurrent_requests,
        )
        policy = self.access
        generic_model_errors = settings.model_error_detail == "generic"
        app.state.generic_model_errors = generic_model_errors
        # Guards sit outside the fast path, so they cover every route (server/guards.py).
        served = inner_guards(InferFastPath(app), settings, policy)
        rest_app: Any = outer_guards(observability.wrap(served), settings)
        if tracing.active:
            rest_app = TracingASGI(rest_app)
        if settings.access_log:  # outermost: every request, refused ones too
            rest_app = AccessLog(rest_app, "rest")
        config = uvicorn.Config(
            rest_app,
            lifespan="off",
            http=limited_protocol(CoalescingHttpToolsProtocol, limits),
            timeout_keep_alive=settings.timeout_keep_alive,  # type: ignore[arg-type]
            access_log=False,  # server/access_log.py writes the access log
            log_config=None,
            root_path=settings.root_path,
            # Past graceful_timeout the registry ends what is left with 503s; uvicorn's
            # own limit (which would answer 500) comes only after those are sent.
            timeout_graceful_shutdown=settings.graceful_timeout + SHUTDOWN_MARGIN,  # type: ignore[arg-type]
            server_header=False,
            **(self.tls.uvicorn_options() if self.tls else {}),
        )
        if self.tls is not None:  # build the SSL context now, so reloads reach it
            config.load()
            self.tls.register(config.ssl)
        self._uvicorn = _EmbeddedUvicorn(config)
        late = await self._join_frontends()
        # -- gRPC (server/grpc.py): bound before anything starts, so a busy port fails early.
        try:
            from .grpc import GrpcTransport

            grpc_transport = GrpcTransport(
                self.registry,
                app.state.endpoints.metadata,
                settings.host,
                settings.grpc_port,
                settings.grpc_max_message_length,
                call_metrics=observability.grpc_call_metrics(),
                max_concurrent_rpcs=settings.max_concurrent_requests,
                interceptors=_grpc_interceptors(policy, settings.access_log),
                credentials=self.tls.grpc_credentials() if self.tls else None,
                reuse_port=self.role is not None,
            )
        except BaseException:
            http_socket.close()
            raise
        grpc_transport.servicer.generic_model_errors = generic_model_errors
        await grpc_transport.start()
        logger.info("gRPC listening on %s:%s", settings.host, grpc_transport.port)
        # -- end gRPC
        rest_task = asyncio.create_task(self._uvicorn.serve(sockets=[http_socket]))
        observability.extra_collectors.append(
            AutoscalingCollector(self.registry, self.runners.dispatch_pools, self.role is None)
        )
        observability.extra_collectors.append(self.payload_log)
        metrics = _metrics_server(observability, metrics_socket, policy, settings.access_log)
        metrics_task = None
        if metrics is not None and metrics_socket is not None:
            with server_label("metrics"):  # the task's log lines say they are the metrics server's
                metrics_task = asyncio.create_task(metrics.serve(sockets=[metrics_socket]))
        self._http_port = int(http_socket.getsockname()[1])
        self._listeners = _listeners(settings, http_socket, metrics_socket if metrics else None)
        self._listeners.insert(1, ("gRPC", f"{settings.host}:{grpc_transport.port}"))
        tls_state = "TLS off"
        if self.tls is not None:
            tls_state = "mutual TLS" if self.tls.mutual else "TLS on"
            what, address = self._listeners[0]
            self._listeners[0] = (what, address.replace("http://", "https://", 1))
        self._listeners.append(("access", describe_access(settings.host, policy, tls_state)))
        tls_watch = self._watch_tls()
        with self._signals():
            loading = self._start_loading(late)
            stop_task = asyncio.create_task(self._stop.wait())
            await asyncio.wait({rest_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
            if stop_task.done():
                await self.drain_before_stop(rest_task)
            logger.info("shutting down: finishing in-flight requests")
            self._uvicorn.should_exit = True
            hard_limit = asyncio.create_task(self._hard_limit(settings.graceful_timeout))
            await asyncio.gather(
                rest_task, grpc_transport.stop(settings.graceful_timeout + SHUTDOWN_MARGIN)
            )
            hard_limit.cancel()
            if metrics is not None and metrics_task is not None:
                metrics.should_exit = True
                await metrics_task
            loading.cancel()
            stop_task.cancel()
            if tls_watch is not None:
                tls_watch.cancel()
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            await self.registry.close()
            await self.runners.close()  # engine: workers stop last
            await asyncio.get_running_loop().run_in_executor(None, self.payload_log.close)
            logger.info("stopped")
        if self.startup_error is not None:
            raise self.startup_error

    async def _join_frontends(self) -> bool:
        """Front-end: open the link to the supervisor (stop when it is gone); a front-end
        joining shared ports loads its models before it listens (returns True then)."""
        role = self.role
        if role is None:
            return False
        observability = self.observability
        collectors: list[Any] = []
        if observability.metrics is not None:
            collectors.append(observability.metrics.families)
        collectors.append(AutoscalingCollector(self.registry, self.runners.dispatch_pools, False))
        collectors.append(self.payload_log)
        self.peer = FrontendPeer(
            role,
            self.registry,
            collectors,
            answer=observability.answer_locally,
            shared_pools=self.shared_pools,
        )
        link_task = await self.peer.open()
        observability.across = AcrossFrontends(
            self.peer.link, role.index, self.settings.frontend_gather_total_timeout
        )
        link_task.add_done_callback(lambda _: self.request_stop())
        if not role.listen_after_load:
            return False
        for model in self.models:
            self.registry.add(model)
        await self._load_models()
        return True

    def _start_loading(self, loaded: bool) -> asyncio.Task[None]:
        """Load the models in the background (unless already ``loaded``); a front-end then
        tells the supervisor it serves."""
        if not loaded:
            for model in self.models:
                self.registry.add(model)
        loading = asyncio.create_task(self._load_models() if not loaded else asyncio.sleep(0))
        if self.peer is not None:
            loading.add_done_callback(lambda _: self._announce())
        return loading

    def _announce(self) -> None:
        """Front-end: tell the supervisor it serves (models loaded, ports open)."""
        if self.peer is not None and not self._stop.is_set():
            with contextlib.suppress(ConnectionError):
                self.peer.announce()

    def _watch_tls(self) -> asyncio.Task[None] | None:
        """Reload certificates when their files change, and at once on SIGHUP."""
        if self.tls is None:
            return None
        tls = self.tls
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, tls.reload, True)
        return asyncio.create_task(tls.watch(self.settings.tls_reload_interval))

    async def drain_before_stop(self, rest_task: asyncio.Task[None]) -> None:
        """Shutdown step 1: readiness goes false at once; keep serving for ``drain_delay``.

        Load balancers and Kubernetes endpoints keep routing to a terminating process for
        a few seconds; requests that arrive meanwhile are still served on both transports.
        A second signal does not shorten the delay; the REST server ending does.
        """
        self.registry.draining = True
        delay = self.settings.drain_delay or 0.0
        if delay <= 0:
            return
        logger.info("draining: readiness is false, still serving for %.1fs", delay)
        await asyncio.wait({rest_task}, timeout=delay)

    async def _hard_limit(self, graceful_timeout: float) -> None:
        """After ``graceful_timeout``, end what is still in flight with 503 + Retry-After."""
        await asyncio.sleep(graceful_timeout)
        ended = self.registry.abort_in_flight()
        if ended:
            logger.warning(
                "graceful_timeout (%gs) reached: %d request(s) answered 503",
                graceful_timeout,
                ended,
            )

    async def _load_models(self) -> None:
        await self.runners.start()  # engine: start workers before loading models
        failed: list[ModelSettings] = []
        startup = self.models
        if self.peer is not None:  # a replacement starts from the current index
            decided = self.peer.decided()
            startup = [model for model in startup if model.name not in decided]
        if self.settings.load_models_at_startup:
            failed = await self.registry.load_all(startup)
        if self.peer is not None:
            await self.peer.replay()
        # What start-up made (modules, models) lives as long as the server: out of the
        # collector's view, the collections that serving's short-lived objects trigger
        # stay cheap instead of walking the whole heap (about 15% of a streamed chunk's CPU).
        if self.freeze_heap:
            gc.collect()
            gc.freeze()
        ready = sum(1 for e in self.registry.entries() if e.state.value == "READY")
        logger.info("%d of %d model(s) ready", ready, len(self.registry.entries()))
        if self.role is None or self.role.index == 0:  # one banner per server
            self.observability.banner(self.registry, self._listeners)
            for line in self.runners.describe([e.name for e in self.registry.entries()]):
                logger.info("%s", line)  # each pool with its processes and models
            hint = ready_hint(
                self.registry.entries(),
                self.settings.host,
                self._http_port,
                TLSHint(self.tls.cert_file, self.tls.mutual) if self.tls else None,
                self.settings.auth.header if self.access.enabled else None,
            )
            if hint is not None:
                logger.info("%s", hint)
        if failed and self.settings.exit_on_error:
            names = ", ".join(sorted({s.name for s in failed}))
            self.startup_error = ModelLoadError(
                f"{len(failed)} model(s) failed to load ({names}); "
                "exit_on_error is set, so the server stops"
            )
            logger.error("%s", self.startup_error.message)
            self.request_stop()

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """Route SIGINT/SIGTERM to a graceful stop for the server's lifetime only."""
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.request_stop)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread (tests) or no signal support
        try:
            yield
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)


def http_limits(settings: Settings, open_files: int) -> HttpLimits:
    """The REST transport's limits from the server's settings and the open-file limit."""
    capacity = connection_capacity(open_files)
    return HttpLimits(
        max_connections=min(settings.max_connections or capacity, capacity),
        max_concurrent_requests=settings.max_concurrent_requests,
        max_request_size=settings.max_request_size,
        max_header_size=settings.max_header_size,
        max_header_count=settings.max_header_count,
        timeout_request_head=settings.timeout_request_head,
        timeout_request_body=settings.timeout_request_body,
        timeout_keep_alive=settings.timeout_keep_alive,
    )


def build_placement(
    settings: Settings,
    models: list[ModelSettings],
    repository_root: Path | None,
    broker: PoolBroker | None = None,
    run_folder: str | None = None,
    frontends: int = 1,
) -> RunnerPlacement:
    """Where each model runs, from the server's settings (``broker``: a front-end's
    supervisor owns the pools; ``run_folder``: the supervisor's pools, shared by
    ``frontends`` front-ends)."""
    environments_dir = (
        Path(settings.environments_dir)
        if settings.environments_dir
        else ((repository_root or Path.cwd()) / ".mlpack" / "envs")
    )
    limits = pool_limits(settings)
    if run_folder is not None:
        # One connection per front-end; room for replacements not yet seen gone.
        connections = 2 * frontends + 2
        limits = dataclasses.replace(
            limits, run_folder=run_folder, max_data_connections=connections
        )
    return RunnerPlacement(
        settings.parallel_workers,
        settings.parallel_workers_timeout,
        environments_dir,
        limits,
        extraction_limits(settings),
        build_environments=settings.build_environments,
        models=models,
        broker=broker,
    )


def pool_limits(settings: Settings) -> PoolLimits:
    """The worker pools' limits from the server's settings."""
    return PoolLimits(
        max_queue_size=settings.max_queue_size,
        max_in_flight=settings.worker_pipeline_depth,
        ping_interval=settings.worker_ping_interval,
        ping_timeout=settings.worker_ping_timeout,
        max_requests_per_worker=settings.max_requests_per_worker,
        max_restart_backoff=settings.worker_max_restart_backoff,
    )


def _listeners(
    settings: Settings, http_socket: socket.socket, metrics_socket: socket.socket | None
) -> list[tuple[str, str]]:
    """What the banner lists: each listening port with its URL."""
    host = settings.host
    listeners = [("REST", f"http://{host}:{http_socket.getsockname()[1]}  (docs: /v2/docs)")]
    if metrics_socket is not None:
        port = metrics_socket.getsockname()[1]
        listeners.append(("metrics", f"http://{host}:{port}{settings.metrics_endpoint}"))
    return listeners


def server_tls(settings: Settings) -> ServerTLS | None:
    """The TLS files from settings (both or neither of cert and key), checked now."""
    if not settings.tls_cert_file and not settings.tls_key_file:
        if settings.tls_client_ca_file:
            raise InvalidSettings("tls_client_ca_file needs tls_cert_file and tls_key_file")
        return None
    if not (settings.tls_cert_file and settings.tls_key_file):
        raise InvalidSettings("TLS needs both tls_cert_file and tls_key_file")
    return ServerTLS(settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)


def _grpc_interceptors(policy: AccessPolicy, access_log: bool = False) -> list[Any]:
    """The access log (outermost, so refused calls are logged too) when ``access_log`` is
    on, and the access interceptor when the policy can refuse anything (else none: no cost).
    """
    interceptors: list[Any] = []
    if access_log:
        from .grpc_access_log import AccessLogInterceptor

        interceptors.append(AccessLogInterceptor())
    if policy.active:
        from .grpc_access import AccessInterceptor

        interceptors.append(AccessInterceptor(policy))
    return interceptors


def _metrics_server(
    observability: Observability,
    sock: socket.socket | None,
    policy: AccessPolicy | None = None,
    access_log: bool = False,
) -> _EmbeddedUvicorn | None:
    """The metrics endpoint's own uvicorn server (None when metrics are disabled)."""
    app: Any = observability.metrics_app()
    if app is None or sock is None:
        return None
    if policy is not None:
        app = metrics_guards(app, observability.settings, policy)
    if access_log:
        app = AccessLog(app, "metrics")
    return embedded_metrics_server(app)


def embedded_metrics_server(app: Any) -> _EmbeddedUvicorn:
    """A uvicorn server for a metrics app (no lifespan, no access log of uvicorn's own)."""
    config = uvicorn.Config(
        app,
        lifespan="off",
        http="httptools",
        access_log=False,
        log_config=None,
        server_header=False,
    )
    return _EmbeddedUvicorn(config)


def start_tracing(settings: Settings) -> bool:
    """Switch OpenTelemetry tracing on when settings (or ``OTEL_*`` variables) ask for it."""
    endpoint = tracing.resolve_endpoint(settings.tracing_server)
    if endpoint is None:
        return False
    protocol = tracing.resolve_protocol(settings.tracing_protocol)
    ratio = settings.tracing_sampling_ratio
    if ratio is None:
        ratio = float(os.environ.get("OTEL_TRACES_SAMPLER_ARG", "1.0"))
    service = os.environ.get("OTEL_SERVICE_NAME", settings.server_name)
    tracing.configure(endpoint, protocol, ratio, service)
    logger.info("tracing: OTLP %s to %s, sampling ratio %s", protocol, endpoint, ratio)
    return True


class Serving(Protocol):
    """What ``run_server`` runs: an ``MLPackServer`` or the front-end supervisor."""

    async def serve(self) -> None: ...


def run_server(server: Serving) -> None:
    """Run ``server`` to completion on uvloop (when installed)."""
    loop_factory: Any = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        pass
    if isinstance(server, MLPackServer):
        server.freeze_heap = True
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(server.serve())
