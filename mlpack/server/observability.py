"""What a server adds around the protocol so people can see into it.

Metrics (own port), per-model statistics (``/v2/models/{m}[/versions/{v}]/stats``), API
docs, CORS and the startup banner, assembled from ``Settings`` for ``server.app``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..engine.registry import ModelRegistry
from ..engine.stats import InferenceObserver, ObserverGroup, StatsRecorder
from ..settings import Settings
from .dashboard import DashboardEndpoints, DashboardRecorder
from .docs import DocsEndpoints
from .frontend_figures import FiguresQuery, answer_figures
from .frontend_stats import AcrossFrontends, StatsQuery, answer_locally
from .logging import banner_lines
from .metrics import ASGIApp, MetricsFolder, ServerMetrics, build_metrics_app

logger = logging.getLogger("mlpack.server")


class Observability:
    """Metrics, statistics, docs and CORS for one server.

    Parameters:
        settings: the server's settings (metrics_*, cors_settings, server name and version).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stats = StatsRecorder()
        self.metrics: ServerMetrics | None = None
        self.metrics_folder: MetricsFolder | None = None
        self.dashboard: DashboardRecorder | None = None
        # One of several front-ends: the supervisor prepared (and cleans) the metrics folder.
        self.shared_folder = False
        # More scrape-time collectors (e.g. server/autoscaling.py), added before metrics_app().
        self.extra_collectors: list[Any] = []
        # One of several front-ends: /stats and the dashboard cover all of them.
        self.across: AcrossFrontends | None = None

    def answer_locally(self, query: Any) -> Any:
        """This front-end's own figures for a peer's query (``server/frontend_stats.py``)
        or for the supervisor to keep (``server/frontend_figures.py``)."""
        if isinstance(query, FiguresQuery):
            return answer_figures(query, self.stats, self.dashboard)
        return answer_locally(query, self.stats, self.dashboard)

    def _across(self) -> AcrossFrontends | None:
        return self.across

    @property
    def metrics_enabled(self) -> bool:
        return bool(self.settings.metrics_endpoint)

    def start(self) -> InferenceObserver:
        """Prepare the metrics folder (before any worker spawns); return the registry's observer."""
        observers: list[InferenceObserver] = [self.stats]
        if self.settings.dashboard_enabled:
            self.dashboard = DashboardRecorder(self.settings.parallel_workers)
            observers.append(self.dashboard)
        if self.metrics_enabled:
            folder = MetricsFolder(self.settings.metrics_dir)
            self.metrics_folder = folder.prepare(clean=not self.shared_folder)
            self.metrics = ServerMetrics(self.settings.metrics_rest_server_prefix)
            observers.append(self.metrics)
            logger.debug("metrics folder: %s", self.metrics_folder.path)
        return ObserverGroup(observers)

    def close(self) -> None:
        if self.metrics_folder is not None:
            self.metrics_folder.close()
            self.metrics_folder = None

    def routes(
        self, registry: ModelRegistry, route_paths: dict[str, dict[str, Any]] | None = None
    ) -> list[Route]:
        """Docs and statistics routes for the REST app (``route_paths``: runtime routes'
        OpenAPI entries by model, ``server/model_routes.py``)."""
        docs = DocsEndpoints(
            registry, self.settings.server_name, self.settings.server_version, route_paths
        )
        stats = _StatsEndpoint(registry, self.stats, self._across)
        model = "/v2/models/{model_name}"
        routes = [
            *docs.routes(),
            Route(model + "/stats", stats.endpoint, methods=["GET"]),
            Route(model + "/versions/{model_version}/stats", stats.endpoint, methods=["GET"]),
        ]
        if self.dashboard is not None:
            routes += DashboardEndpoints(
                self.dashboard, self.settings.server_name, self._across
            ).routes()
        return routes

    def wrap(self, app: Any) -> ASGIApp:
        """Add CORS (when configured) and REST metrics (when enabled) around the REST app."""
        cors = self.settings.cors_settings
        if cors is not None:
            from starlette.middleware.cors import CORSMiddleware

            app = CORSMiddleware(app, **cors.model_dump())
        if self.metrics is not None:
            wrapped: ASGIApp = self.metrics.rest_middleware(app)
            return wrapped
        return app  # type: ignore[no-any-return]

    def grpc_call_metrics(self) -> ServerMetrics | None:
        """Where the gRPC transport counts RPCs (None when metrics are off)."""
        return self.metrics

    def metrics_app(self) -> ASGIApp | None:
        if (
            self.metrics_folder is None
            or self.metrics is None
            or not self.settings.metrics_endpoint
        ):
            return None
        return build_metrics_app(
            self.metrics_folder,
            self.settings.metrics_endpoint,
            self.metrics.families,
            *self.extra_collectors,
        )

    def banner(self, registry: ModelRegistry, listeners: list[tuple[str, str]]) -> None:
        """Log the startup banner: listeners and every model with its state."""
        models = [
            (entry.name, entry.version, entry.state.value, entry.reason)
            for entry in sorted(registry.entries(), key=lambda e: (e.name, e.version or ""))
        ]
        for line in banner_lines(
            self.settings.server_name, self.settings.server_version, listeners, models
        ):
            logger.info("%s", line)


class _StatsEndpoint:
    """``GET /v2/models/{m}[/versions/{v}]/stats``: Triton-style statistics per version
    (summed over every front-end when there are several; ``frontends`` says which)."""

    def __init__(
        self,
        registry: ModelRegistry,
        stats: StatsRecorder,
        across: Callable[[], AcrossFrontends | None] = lambda: None,
    ) -> None:
        self.registry = registry
        self.stats = stats
        self.across = across

    async def endpoint(self, request: Request) -> Response:
        name = request.path_params["model_name"]
        version = request.path_params.get("model_version")
        # An unknown model or version raises ModelNotFound: 404 (error_handlers).
        if version is not None:
            versions: list[str | None] = [self.registry.get(name, version).version]
        else:
            self.registry.get(name)
            versions = [e.version for e in self.registry.entries() if e.name == name]
        local = [self.stats.get(name, v) for v in versions]
        across = self.across()
        if across is None:
            return JSONResponse({"model_stats": [s.as_dict() for s in local]})
        merged, note = await across.stats(StatsQuery(name, tuple(versions)), local)
        return JSONResponse({"model_stats": [s.as_dict() for s in merged], "frontends": note})
