"""API docs: OpenAPI documents and a Swagger UI served from assets bundled with the package.

``/v2/docs`` documents the whole protocol; ``/v2/models/{m}[/versions/{v}]/docs`` one model.
Each page has its document at ``…/docs/dataplane.json``. The Swagger UI's JavaScript and CSS
come from the ``swagger-ui-bundle`` distribution and are served by this server, so the
pages render with no internet access.
"""

from __future__ import annotations

import html
import json
import mimetypes
from functools import cache
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ..engine.registry import ModelRegistry
from ..types import MetadataModelResponse
from .openapi import dataplane_document, model_document

STATIC_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "favicon-16x16.png")

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <link rel="stylesheet" href="{static}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{static}/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{static}/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{
      url: {spec_url},
      dom_id: "#swagger-ui",
      deepLinking: true,
      docExpansion: {expansion},
      defaultModelsExpandDepth: 0,
      validatorUrl: null,
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout"
    }});
  </script>
</body>
</html>
"""


def _assets_folder() -> Path:
    from swagger_ui_bundle import swagger_ui_path

    return Path(str(swagger_ui_path))


@cache
def _asset(name: str) -> bytes:
    return (_assets_folder() / name).read_bytes()


def render_page(title: str, spec_url: str, static_url: str, expand_all: bool) -> str:
    """The Swagger UI page for the document at ``spec_url``."""
    return _PAGE.format(
        title=html.escape(title),
        static=html.escape(static_url, quote=True),
        spec_url=json.dumps(spec_url),
        expansion=json.dumps("full" if expand_all else "list"),
    )


class DocsEndpoints:
    """Routes serving the documents, the pages and the bundled Swagger UI assets."""

    def __init__(
        self,
        registry: ModelRegistry,
        server_name: str,
        server_version: str,
        route_paths: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.registry = registry
        self.server_name = server_name
        self.server_version = server_version
        # Runtime routes (server/model_routes.py): model name → OpenAPI path items.
        self.route_paths = route_paths or {}

    async def dataplane_page(self, request: Request) -> Response:
        root = _root(request)
        return HTMLResponse(
            render_page(
                f"{self.server_name} API",
                f"{root}/v2/docs/dataplane.json",
                f"{root}/v2/docs/static",
                False,
            )
        )

    async def dataplane_json(self, request: Request) -> Response:
        extra = {p: item for paths in self.route_paths.values() for p, item in paths.items()}
        return JSONResponse(
            dataplane_document(self.server_name, self.server_version, _root(request), extra)
        )

    async def model_page(self, request: Request) -> Response:
        name, version = _model_path(request)
        self.registry.get(name, version)  # an unknown model answers 404 (error_handlers)
        root = _root(request)
        base = f"{root}/v2/models/{name}" + (f"/versions/{version}" if version else "")
        title = f"{name} {version or ''}".strip()
        return HTMLResponse(
            render_page(title, f"{base}/docs/dataplane.json", f"{root}/v2/docs/static", True)
        )

    async def model_json(self, request: Request) -> Response:
        name, version = _model_path(request)
        metadata = self._metadata(name, version)
        extra = self.route_paths.get(name) if version is None else None
        return JSONResponse(
            model_document(metadata, version, self.server_version, _root(request), extra)
        )

    async def static(self, request: Request) -> Response:
        name = request.path_params["file"]
        if name not in STATIC_FILES:
            return JSONResponse({"error": f"no such asset: {name}"}, status_code=404)
        media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return Response(
            _asset(name), media_type=media_type, headers={"Cache-Control": "public, max-age=86400"}
        )

    def _metadata(self, name: str, version: str | None) -> MetadataModelResponse:
        entry = self.registry.get(name, version)
        if entry.metadata is not None:
            return entry.metadata.model_copy(update={"name": name})
        settings = entry.settings
        return MetadataModelResponse(
            name=name, platform=settings.platform, inputs=settings.inputs, outputs=settings.outputs
        )

    def routes(self) -> list[Route]:
        model = "/v2/models/{model_name}"
        version = model + "/versions/{model_version}"
        return [
            Route("/v2/docs", self.dataplane_page, methods=["GET"]),
            Route("/v2/docs/dataplane.json", self.dataplane_json, methods=["GET"]),
            Route("/v2/docs/static/{file}", self.static, methods=["GET"]),
            Route(model + "/docs", self.model_page, methods=["GET"]),
            Route(model + "/docs/dataplane.json", self.model_json, methods=["GET"]),
            Route(version + "/docs", self.model_page, methods=["GET"]),
            Route(version + "/docs/dataplane.json", self.model_json, methods=["GET"]),
        ]


def _root(request: Request) -> str:
    root: str = request.scope.get("root_path", "") or ""
    return root.rstrip("/")


def _model_path(request: Request) -> tuple[str, str | None]:
    return request.path_params["model_name"], request.path_params.get("model_version")
