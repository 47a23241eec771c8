"""REST turns every error into ``{"error": ...}`` in one place; every 503 carries Retry-After."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest
from starlette.routing import Route

from mlpack import errors
from mlpack.engine.registry import ModelRegistry
from mlpack.server.error_handlers import error_response
from mlpack.server.observability import Observability
from mlpack.server.rest import InferFastPath, build_rest_app
from mlpack.settings import ModelSettings, Settings
from mlpack.types import InferenceRequest, InferenceResponse, MetadataModelResponse
from tests.helpers.errors import samples

ERRORS = samples()
BODY = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}


@pytest.mark.parametrize("error", ERRORS, ids=[type(e).__name__ for e in ERRORS])
def test_every_error_becomes_its_status_and_message(error: errors.MLPackError) -> None:
    response = error_response(error)
    assert response.status_code == int(error.status)
    assert orjson.loads(response.body) == {"error": error.message}
    assert ("retry-after" in response.headers) == (response.status_code == 503)


def test_retry_after_follows_the_error() -> None:
    assert error_response(errors.Overloaded("full", retry_after=3.2)).headers["retry-after"] == "3"
    assert error_response(errors.ModelNotReady("loading")).headers["retry-after"] == "1"
    assert error_response(errors.ServerError(503, "busy")).headers["retry-after"] == "1"


class _Runner:
    """A runner whose predict raises what the test puts in ``error``."""

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        self.error: BaseException | None = None

    async def load(self) -> MetadataModelResponse:
        return MetadataModelResponse(name=self.settings.name)

    async def predict(self, request: InferenceRequest) -> InferenceResponse:
        assert self.error is not None
        raise self.error

    async def unload(self) -> None:
        pass


async def _fails(request: Any) -> Any:
    raise ValueError("a bug")


async def _call(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, **kwargs)


@pytest.fixture
def registry() -> ModelRegistry:
    return ModelRegistry(runner_factory=_Runner)


async def test_router_and_fast_path_answer_alike(registry: ModelRegistry) -> None:
    extra = [*Observability(Settings()).routes(registry), Route("/bug", _fails)]
    app = build_rest_app(registry, extra_routes=extra)
    fast = InferFastPath(app)
    registry.add(ModelSettings(name="m", implementation="x.Y"))  # known, not loaded
    for target in (app, fast):
        infer = await _call(target, "POST", "/v2/models/m/infer", json=BODY)
        assert infer.status_code == 503 and infer.headers["retry-after"] == "1"
        assert "not ready" in infer.json()["error"]
        missing = await _call(target, "POST", "/v2/models/nope/infer", json=BODY)
        assert missing.status_code == 404 and missing.json() == {"error": "model 'nope' not found"}
    ready = await _call(fast, "GET", "/v2/models/m/ready")
    # Known but not ready: 400 (the protocol's "4xx indicates false"), not an outage.
    assert ready.status_code == 400 and ready.json()["ready"] is False
    health = await _call(fast, "GET", "/v2/health/ready")
    assert health.status_code == 503 and health.headers["retry-after"] == "1"
    for tail in ("docs/dataplane.json", "docs", "stats"):
        unknown = await _call(fast, "GET", f"/v2/models/nope/{tail}")
        assert unknown.status_code == 404 and unknown.json() == {"error": "model 'nope' not found"}
    bug = await _call(fast, "GET", "/bug")
    assert bug.status_code == 500 and bug.json() == {"error": "internal error: ValueError('a bug')"}
    no_route = await _call(fast, "GET", "/nowhere")
    assert no_route.status_code == 404 and no_route.json() == {"error": "no route for GET /nowhere"}


async def test_errors_raised_while_serving_go_through_the_same_function(
    registry: ModelRegistry,
) -> None:
    app = build_rest_app(registry)
    fast = InferFastPath(app)
    await registry.load_version(ModelSettings(name="m", implementation="x.Y"))
    runner = registry.get("m").runner
    assert isinstance(runner, _Runner)
    for error in (
        errors.Overloaded("full", retry_after=2.0),
        errors.WorkerError("died"),
        RuntimeError("a bug"),
        errors.InvalidRequest("bad"),
    ):
        runner.error = error
        for target in (app, fast):
            response = await _call(target, "POST", "/v2/models/m/infer", json=BODY)
            expected = error_response(error)
            assert response.status_code == expected.status_code
            assert response.content == expected.body
            assert response.headers.get("retry-after") == expected.headers.get("retry-after")
    await asyncio.sleep(0)
