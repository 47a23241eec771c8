"""Assemble the engine and transports from settings; own start and stop order.

Start: bind every port → serve REST (live, not yet ready) → load models concurrently
→ ready. Stop (SIGTERM/SIGINT): stop accepting and let in-flight requests finish
(``graceful_timeout``) → unload models.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from pathlib import Path
from typing import Any, Iterator, Optional

import uvicorn

from ..engine.registry import ModelRegistry, RunnerFactory
from ..engine.runner import LocalRunner, ModelRunner
from ..settings import ModelSettings, Settings
from .rest import build_rest_app
from .sockets import bind_socket

logger = logging.getLogger("mlpack.server")


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
    """

    def __init__(
        self,
        settings: Settings,
        models: list[ModelSettings],
        repository_root: Optional[Path] = None,
    ) -> None:
        self.settings = settings
        self.models = models
        environments_dir = Path(settings.environments_dir) if settings.environments_dir else (
            (repository_root or Path.cwd()) / ".mlpack" / "envs"
        )
        self.registry = ModelRegistry(
            runner_factory=runner_factory(environments_dir), repository_root=repository_root
        )
        self._stop = asyncio.Event()
        self._uvicorn: Optional[_EmbeddedUvicorn] = None

    def request_stop(self) -> None:
        """Begin a graceful shutdown (safe to call from a signal handler)."""
        self._stop.set()

    async def serve(self, http_socket: Optional[socket.socket] = None) -> None:
        settings = self.settings
        http_socket = http_socket or bind_socket(settings.host, settings.http_port, "REST")
        app = build_rest_app(
            self.registry,
            server_name=settings.server_name,
            server_version=settings.server_version,
            root_path=settings.root_path,
        )
        config = uvicorn.Config(
            app,
            lifespan="off",
            http="httptools",
            access_log=settings.access_log,
            log_config=None,
            root_path=settings.root_path,
            timeout_graceful_shutdown=settings.graceful_timeout,
            server_header=False,
        )
        self._uvicorn = _EmbeddedUvicorn(config)
        rest_task = asyncio.create_task(self._uvicorn.serve(sockets=[http_socket]))
        with self._signals():
            port = http_socket.getsockname()[1]
            logger.info("REST listening on http://%s:%s", settings.host, port)
            for model in self.models:
                self.registry.add(model)
            loading = asyncio.create_task(self._load_models())
            stop_task = asyncio.create_task(self._stop.wait())
            await asyncio.wait({rest_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
            logger.info("shutting down: finishing in-flight requests")
            self._uvicorn.should_exit = True
            await rest_task
            loading.cancel()
            stop_task.cancel()
            await self.registry.close()
            logger.info("stopped")

    async def _load_models(self) -> None:
        if self.settings.load_models_at_startup:
            await self.registry.load_all(self.models)
        ready = sum(1 for e in self.registry.entries() if e.state.value == "READY")
        logger.info("%d of %d model(s) ready", ready, len(self.registry.entries()))

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


def runner_factory(environments_dir: Path) -> RunnerFactory:
    """Models with their own environment run in that environment's Python; others in-process."""

    def build(settings: ModelSettings) -> ModelRunner:
        parameters = settings.parameters
        if parameters.environment_tarball or parameters.environment_path:
            from ..engine.environment_runner import EnvironmentRunner

            return EnvironmentRunner(settings, environments_dir)
        return LocalRunner(settings)

    return build


def run_server(server: MLPackServer) -> None:
    """Run ``server`` to completion on uvloop (when installed)."""
    loop_factory: Any = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(server.serve())
