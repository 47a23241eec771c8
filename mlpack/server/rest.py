"""REST transport: Open Inference Protocol routes on Starlette.

Decoding and encoding live here; every route hands over to the registry.
Errors become ``{"error": message}`` with their status in one place (``error_handlers``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import tracing
from ..codecs.bytes_json import bytes_outputs_as_text
from ..engine.deadlines import parse_timeout_header
from ..engine.registry import ModelRegistry
from ..errors import InvalidRequest, ModelNotReady
from ..types import InferenceRequest, InferenceResponse, MetadataServerResponse
from . import binary
from .disconnect import unless_disconnected
from .error_handlers import EXCEPTION_HANDLERS, error_response, retry_after
from .headers import outgoing_headers, response_headers
from .media import JSON_ONLY, JSON_OR_BINARY, check_content_type
from .rest_io import (
    TIMEOUT_HEADER,
    JSONBytesResponse,
    attach_headers,
    model_path,
    parse_inference_request,
    request_headers,
)
from .streams import StreamEndpoints

logger = logging.getLogger("mlpack.rest")

EXTENSIONS = ["model_repository", binary.EXTENSION]
# Bodies larger than this are decoded on a thread, off the event loop.
OFF_LOOP_BODY_SIZE = 1024 * 1024


Endpoint = Callable[[Request], Awaitable[Response]]


class RestEndpoints:
    """The protocol's REST endpoints over one registry."""

    def __init__(self, registry: ModelRegistry, server_name: str, server_version: str) -> None:
        self.registry = registry
        self.metadata = MetadataServerResponse(
            name=server_name, version=server_version, extensions=list(EXTENSIONS)
        )

    # -- server ------------------------------------------------------------------------
    async def server_metadata(self, request: Request) -> Response:
        return JSONBytesResponse(self.metadata.model_dump(mode="json"))

    async def live(self, request: Request) -> Response:
        return JSONBytesResponse({"live": True})

    async def ready(self, request: Request) -> Response:
        ready = self.registry.is_ready()
        if ready:
            return JSONBytesResponse({"ready": True})
        return JSONBytesResponse({"ready": False}, status_code=503, headers=retry_after())

    # -- models ----------------------------------------------------------------------------
    async def model_metadata(self, request: Request) -> Response:
        name, version = model_path(request)
        metadata = await self.registry.metadata(name, version)
        return JSONBytesResponse(metadata.model_dump(mode="json", exclude_none=True))

    async def model_ready(self, request: Request) -> Response:
        # Unknown: 404. Known but not ready: 400, as the protocol's "4xx indicates false"
        # (and Triton, MLServer, tritonclient's is_model_ready) read it; gRPC says ready=false.
        name, version = model_path(request)
        try:
            self.registry.get_ready(name, version)
        except ModelNotReady as error:
            body = {"name": name, "ready": False, "error": error.message}
            return JSONBytesResponse(body, status_code=400)
        return JSONBytesResponse({"name": name, "ready": True})

    async def infer(self, request: Request) -> Response:
        name, version = model_path(request)
        headers = request_headers(request)
        header_length = headers.get(binary.HEADER)
        check_content_type(
            headers.get("content-type"), JSON_ONLY if header_length is None else JSON_OR_BINARY
        )
        body = await request.body()
        with tracing.stage("decode"):
            if len(body) > OFF_LOOP_BODY_SIZE:
                # Decoding a big body takes long: do it on a thread so health checks and
                # small requests keep being answered meanwhile.
                inference_request = await asyncio.to_thread(decode_infer_body, body, header_length)
            else:
                inference_request = decode_infer_body(body, header_length)
        del body
        binary_outputs = binary.requested_binary_outputs(inference_request)
        attach_headers(inference_request, request, headers)
        timeout = parse_timeout_header(headers.get(TIMEOUT_HEADER))
        queues = self.registry.queues(name, version)
        work = self.registry.infer(name, version, inference_request, timeout)
        if queues:
            # A queued request whose client has gone is dropped before compute.
            response = await unless_disconnected(request, work)
        else:
            response = await work
        with tracing.stage("encode"):
            return encode_inference_response(response, binary_outputs)

    # -- repository extension ---------------------------------------------------------------------
    async def repository_index(self, request: Request) -> Response:
        check_content_type(request.headers.get("content-type"))
        body = await request.body()
        ready: bool | None = None
        if body.strip():
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError as error:
                raise InvalidRequest(f"request body is not valid JSON: {error}") from None
            if not isinstance(payload, dict):
                raise InvalidRequest("repository index request must be a JSON object")
            ready_value = payload.get("ready")
            if ready_value is not None and not isinstance(ready_value, bool):
                raise InvalidRequest("'ready' must be true or false")
            ready = ready_value
        items = self.registry.index(ready)
        return JSONBytesResponse([item.model_dump(mode="json") for item in items])

    async def repository_load(self, request: Request) -> Response:
        check_content_type(request.headers.get("content-type"))
        await self.registry.request_load(request.path_params["model_name"])
        return JSONBytesResponse({})

    async def repository_unload(self, request: Request) -> Response:
        check_content_type(request.headers.get("content-type"))
        await self.registry.request_unload(request.path_params["model_name"])
        return JSONBytesResponse({})

    def routes(self) -> list[Route]:
        model = "/v2/models/{model_name}"
        version = model + "/versions/{model_version}"
        table: list[tuple[str, Endpoint, list[str]]] = [
            ("/v2", self.server_metadata, ["GET"]),
            ("/v2/health/live", self.live, ["GET"]),
            ("/v2/health/ready", self.ready, ["GET"]),
            (model, self.model_metadata, ["GET"]),
            (version, self.model_metadata, ["GET"]),
            (model + "/ready", self.model_ready, ["GET"]),
            (version + "/ready", self.model_ready, ["GET"]),
            (model + "/infer", self.infer, ["POST"]),
            (version + "/infer", self.infer, ["POST"]),
            ("/v2/repository/index", self.repository_index, ["POST"]),
            ("/v2/repository/models/{model_name}/load", self.repository_load, ["POST"]),
            ("/v2/repository/models/{model_name}/unload", self.repository_unload, ["POST"]),
        ]
        return [Route(path, endpoint, methods=methods) for path, endpoint, methods in table]


def decode_infer_body(body: bytes, header_length: str | None) -> InferenceRequest:
    """An infer body (JSON, or JSON + binary tensors) → ``InferenceRequest``."""
    if header_length is None:
        return parse_inference_request(body)
    header, tensors = binary.split_body(body, header_length)  # binary tensor data extension
    inference_request = parse_inference_request(header)
    binary.attach_inputs(inference_request, tensors)
    return inference_request


def encode_inference_response(
    response: InferenceResponse, binary_outputs: Mapping[str, bool] | None = None
) -> Response:
    """``InferenceResponse`` → JSON (binary outputs after it when asked for); headers the
    model set become HTTP headers."""
    extra_headers = None
    if response.parameters is not None:
        headers = outgoing_headers(response.parameters)
        if headers is not None:
            extra_headers = response_headers(headers)
    chunks = binary.detach_outputs(response, binary_outputs) if binary_outputs else None
    bytes_outputs_as_text(response.outputs)  # JSON carries BYTES elements as strings
    body = _plain_body(response)
    if body is None:
        body = response.model_dump(exclude_none=True)
        if body.get("parameters") == {}:
            del body["parameters"]
    if chunks:
        return binary.binary_response(body, chunks, extra_headers)
    return JSONBytesResponse(body, headers=extra_headers)


def _plain_body(response: InferenceResponse) -> dict[str, Any] | None:
    """``model_dump(exclude_none=True)`` of a response without parameters anywhere, built
    directly (a fifth of the cost); None for any other response."""
    if response.parameters is not None:
        return None
    outputs = []
    for output in response.outputs:
        if output.parameters is not None or output.data is None:
            return None
        outputs.append(
            {
                "name": output.name,
                "shape": output.shape,
                "datatype": output.datatype,
                "data": output.data,
            }
        )
    body: dict[str, Any] = {"model_name": response.model_name}
    if response.model_version is not None:
        body["model_version"] = response.model_version
    if response.id is not None:
        body["id"] = response.id
    body["outputs"] = outputs
    return body


class InferFastPath:
    """Sends ``POST /v2/models/{m}[/versions/{v}]/infer`` straight to its endpoint.

    Starlette's router and exception middleware only add cost on the hottest route, so
    errors here go through the same ``error_response`` the app's handlers use; every
    other request goes through ``app`` as usual. ``scope["route"]`` is set like the
    router would.
    """

    def __init__(self, app: Starlette) -> None:
        self.app = app
        routes = {route.path: route for route in app.routes if isinstance(route, Route)}
        self._unversioned = routes["/v2/models/{model_name}/infer"]
        self._versioned = routes["/v2/models/{model_name}/versions/{model_version}/infer"]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = self._match(scope)
            if match is not None:
                scope["route"], scope["path_params"] = match
                try:
                    response = await match[0].endpoint(Request(scope, receive))
                except Exception as error:
                    generic = getattr(self.app.state, "generic_model_errors", False)
                    response = error_response(error, scope["path"], generic)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _match(self, scope: Any) -> tuple[Route, dict[str, str]] | None:
        path: str = scope["path"]
        root_path: str = scope.get("root_path", "")
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :]
        parts = path.split("/")
        if len(parts) == 5 and parts[4] == "infer" and parts[1] == "v2" and parts[2] == "models":
            return (self._unversioned, {"model_name": parts[3]}) if parts[3] else None
        versioned = len(parts) == 7 and parts[6] == "infer" and parts[4] == "versions"
        if versioned and parts[1] == "v2" and parts[2] == "models" and parts[3] and parts[5]:
            return self._versioned, {"model_name": parts[3], "model_version": parts[5]}
        return None


def build_rest_app(
    registry: ModelRegistry,
    server_name: str = "mlpack",
    server_version: str = "",
    root_path: str = "",
    extra_routes: list[Any] | None = None,
) -> Starlette:
    """The Starlette app serving the protocol over ``registry``."""
    endpoints = RestEndpoints(registry, server_name, server_version)
    streams = StreamEndpoints(registry)
    app = Starlette(
        routes=endpoints.routes() + streams.routes() + list(extra_routes or []),
        exception_handlers=dict(EXCEPTION_HANDLERS),
    )
    app.state.endpoints = endpoints
    app.state.root_path = root_path
    return app
