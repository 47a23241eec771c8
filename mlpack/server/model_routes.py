"""Serve the REST routes runtimes declare (``MLModel.rest_routes``) for chosen models.

The ``model_routes`` setting names the models whose runtime's routes are served (e.g.
MLflow's ``/invocations`` for one MLflow model). A route's path carries no model name,
so one path belongs to one model: two named models declaring the same path is a settings
error, as is a path inside the protocol's ``/v2``. The runtime only translates
(``mlpack.model_routes.ModelRoute``); here the body is read (within ``max_request_size``,
enforced by the HTTP protocol), its ``Content-Type`` checked (415), the request handed to
the registry like any inference (validation, batching, workers, deadlines, metrics) and
errors answered ``{"error": ...}``. Auth covers these routes as data-plane routes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..engine.deadlines import parse_timeout_header
from ..engine.importer import import_implementation
from ..engine.registry import ModelRegistry
from ..errors import InvalidSettings, MLPackError
from ..model_routes import ModelRoute
from ..settings import ModelSettings
from .disconnect import unless_disconnected
from .media import JSON, check_content_type
from .openapi import model_route_operation
from .rest import OFF_LOOP_BODY_SIZE
from .rest_io import TIMEOUT_HEADER, JSONBytesResponse


@dataclass(frozen=True)
class ServedRoute:
    """A runtime's route bound to the one model it serves."""

    model_name: str
    route: ModelRoute


def resolve_model_routes(models: list[ModelSettings], names: list[str]) -> list[ServedRoute]:
    """The routes of the models ``names`` picks; ``InvalidSettings`` when that cannot be."""
    by_name = {settings.name: settings for settings in models}
    served: list[ServedRoute] = []
    owners: dict[str, str] = {}
    for name in dict.fromkeys(names):
        settings = by_name.get(name)
        if settings is None:
            raise InvalidSettings(
                f"model_routes names model '{name}', which is not among the models found "
                f"({', '.join(sorted(by_name)) or 'none'})"
            )
        try:
            implementation = import_implementation(settings.implementation, settings.folder)
        except MLPackError as error:
            raise InvalidSettings(f"model_routes: model '{name}': {error.message}") from None
        routes: tuple[ModelRoute, ...] = getattr(implementation, "rest_routes", ())
        if not routes:
            raise InvalidSettings(
                f"model_routes names model '{name}', but its runtime "
                f"({settings.implementation}) declares no REST routes"
            )
        for route in routes:
            if (
                route.path == "/v2"
                or route.path.startswith("/v2/")
                or not route.path.startswith("/")
            ):
                raise InvalidSettings(
                    f"model '{name}': route path {route.path!r} must start with '/' "
                    "and stay outside /v2"
                )
            if route.path in owners:
                raise InvalidSettings(
                    f"model_routes: {route.path} is declared by both '{owners[route.path]}' and "
                    f"'{name}'; a route without a model in its path serves one model"
                )
            owners[route.path] = name
            served.append(ServedRoute(name, route))
    return served


class _RouteEndpoint:
    """The endpoint of one served route: translate, infer, translate back."""

    def __init__(self, registry: ModelRegistry, served: ServedRoute) -> None:
        self.registry = registry
        self.model_name = served.model_name
        self.route = served.route

    async def handle(self, request: Request) -> Response:
        content_type = request.headers.get("content-type")
        check_content_type(content_type, self.route.media_types)
        media_type = (content_type or JSON).partition(";")[0].strip().lower() or JSON
        metadata = await self.registry.metadata(self.model_name)  # 404 / 503 when not ready
        body = await request.body()
        if len(body) > OFF_LOOP_BODY_SIZE:
            inference_request = await asyncio.to_thread(
                self.route.to_request, body, media_type, metadata
            )
        else:
            inference_request = self.route.to_request(body, media_type, metadata)
        del body
        timeout = parse_timeout_header(request.headers.get(TIMEOUT_HEADER))
        work = self.registry.infer(self.model_name, None, inference_request, timeout)
        if self.registry.queues(self.model_name, None):
            response = await unless_disconnected(request, work)
        else:
            response = await work
        return JSONBytesResponse(self.route.to_answer(response, metadata))


def model_route_table(registry: ModelRegistry, served: list[ServedRoute]) -> list[Route]:
    """Starlette routes for ``served``."""
    return [
        Route(item.route.path, _RouteEndpoint(registry, item).handle, methods=["POST"])
        for item in served
    ]


def model_route_paths(served: list[ServedRoute]) -> dict[str, dict[str, Any]]:
    """OpenAPI path items for ``served``: model name → {path: path item}."""
    paths: dict[str, dict[str, Any]] = {}
    for item in served:
        operation = model_route_operation(item.route, item.model_name)
        paths.setdefault(item.model_name, {})[item.route.path] = {"post": operation}
    return paths
