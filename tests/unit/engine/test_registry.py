from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mlpack.engine.registry import ModelRegistry, version_sort_key
from mlpack.errors import InvalidRequest, ModelNotFound, ModelNotReady
from mlpack.settings import ModelSettings
from mlpack.types import (
    InferenceRequest,
    InferenceResponse,
    MetadataModelResponse,
    MetadataTensor,
    State,
)


class FakeRunner:
    """A runner whose load and predict are controlled by the test."""

    def __init__(
        self, settings: ModelSettings, gate: asyncio.Event | None = None, fail: bool = False
    ) -> None:
        self.settings = settings
        self.gate = gate
        self.fail = fail
        self.unloaded = False

    async def load(self) -> MetadataModelResponse:
        if self.gate:
            await self.gate.wait()
        if self.fail:
            raise RuntimeError("cannot load")
        return MetadataModelResponse(
            name=self.settings.name, outputs=[MetadataTensor(name="y", datatype="FP32", shape=[-1])]
        )

    async def predict(self, request: InferenceRequest) -> InferenceResponse:
        return InferenceResponse(
            model_name="x",
            outputs=[
                {
                    "name": "y",
                    "shape": [1],
                    "datatype": "FP32",
                    "data": [self.settings.parameters.version or 0],
                }
            ],
        )

    async def unload(self) -> None:
        self.unloaded = True


def settings(name: str, version: str | None = None) -> ModelSettings:
    return ModelSettings(name=name, implementation="x.Y", parameters={"version": version})


def request(**kwargs: Any) -> InferenceRequest:
    return InferenceRequest(
        inputs=[{"name": "a", "shape": [1], "datatype": "FP32", "data": [1]}], **kwargs
    )


def test_version_ordering_is_numeric_aware() -> None:
    versions = ["10", "2", "1.10", "1.9", None, "v3"]
    assert sorted(versions, key=version_sort_key) == [None, "1.9", "1.10", "2", "10", "v3"]


async def test_failed_load_is_recorded_and_others_load() -> None:
    runners = {"good": lambda s: FakeRunner(s), "bad": lambda s: FakeRunner(s, fail=True)}
    registry = ModelRegistry(runner_factory=lambda s: runners[s.name](s))
    await registry.load_all([settings("good"), settings("bad")])
    index = {item.name: item for item in registry.index()}
    assert index["good"].state is State.READY
    assert index["bad"].state is State.UNAVAILABLE and "cannot load" in index["bad"].reason
    assert not registry.is_ready()
    with pytest.raises(ModelNotReady, match="cannot load"):
        await registry.infer("bad", None, request())
    with pytest.raises(ModelNotFound):
        await registry.infer("ghost", None, request())


async def test_loading_state_then_ready() -> None:
    gate = asyncio.Event()
    registry = ModelRegistry(runner_factory=lambda s: FakeRunner(s, gate=gate))
    task = asyncio.create_task(registry.load_all([settings("m")]))
    await asyncio.sleep(0.01)
    assert registry.index()[0].state is State.LOADING
    gate.set()
    await task
    assert registry.index()[0].state is State.READY and registry.is_ready()


async def test_newest_version_serves_unversioned_requests() -> None:
    registry = ModelRegistry(runner_factory=FakeRunner)
    await registry.load_all([settings("m", "2"), settings("m", "10"), settings("m", "1")])
    response = await registry.infer("m", None, request())
    assert response.model_version == "10"
    assert (await registry.infer("m", "2", request())).model_version == "2"
    assert registry.versions_of("m") == ["1", "2", "10"]


async def test_reload_swaps_then_retires_old_runner() -> None:
    created: list[FakeRunner] = []

    def factory(s: ModelSettings) -> FakeRunner:
        created.append(FakeRunner(s))
        return created[-1]

    registry = ModelRegistry(runner_factory=factory)
    await registry.load_all([settings("m")])
    await registry.load_version(settings("m"))
    await asyncio.sleep(0.05)
    assert registry.get("m").runner is created[1]
    assert created[0].unloaded and not created[1].unloaded


async def test_unknown_requested_output_rejected_before_model() -> None:
    registry = ModelRegistry(runner_factory=FakeRunner)
    await registry.load_all([settings("m")])
    with pytest.raises(InvalidRequest, match="no output 'z'"):
        await registry.infer("m", None, request(outputs=[{"name": "z"}]))


async def test_unload_keeps_model_listed_as_unavailable() -> None:
    registry = ModelRegistry(runner_factory=FakeRunner)
    await registry.load_all([settings("m")])
    await registry.unload("m")
    item = registry.index()[0]
    assert item.state is State.UNAVAILABLE and item.reason == "unloaded"


async def test_unloading_a_model_never_loaded_lists_it_as_unloaded() -> None:
    """A replacement front-end unloads a startup model it never loaded: same index entry."""
    registry = ModelRegistry(runner_factory=FakeRunner)
    registry.add(settings("m"))
    await registry.load_all([settings("n")])
    await registry.unload("m")
    item = registry.index()[0]
    assert item.state is State.UNAVAILABLE and item.reason == "unloaded"
    assert registry.is_ready()  # no longer counted as a startup model


async def test_given_id_is_echoed_even_empty_and_made_only_when_absent() -> None:
    registry = ModelRegistry(runner_factory=FakeRunner)
    await registry.load_all([settings("m")])
    assert (await registry.infer("m", None, request(id=""))).id == ""
    assert (await registry.infer("m", None, request(id="x"))).id == "x"
    assert (await registry.infer("m", None, request())).id


async def test_index_gives_unversioned_models_an_empty_version() -> None:
    registry = ModelRegistry(runner_factory=FakeRunner)
    await registry.load_all([settings("m"), settings("v", "2")])
    assert [(item.name, item.version) for item in registry.index()] == [("m", ""), ("v", "2")]


async def test_unload_on_purpose_keeps_server_ready_and_load_counts_again() -> None:
    registry = ModelRegistry(runner_factory=FakeRunner)
    await registry.load_all([settings("a"), settings("b")])
    await registry.unload("a")
    assert registry.is_ready()
    with pytest.raises(ModelNotReady):
        registry.get_ready("a")
    await registry.load("a")
    assert registry.is_ready() and registry.get_ready("a")


@pytest.mark.parametrize("rescan", [False, True])
async def test_load_by_name_rescans_only_when_allowed(tmp_path: Any, rescan: bool) -> None:
    """A folder dropped into the repository after start is loaded only with ``rescan``."""
    import json

    known = tmp_path / "known"
    known.mkdir()
    known_settings = {"name": "known", "implementation": "x.Y"}
    (known / "model-settings.json").write_text(json.dumps(known_settings))
    registry = ModelRegistry(lambda s: FakeRunner(s), repository_root=tmp_path)
    registry.rescan = rescan
    registry.add(ModelSettings.resolve(known / "model-settings.json"))
    await registry.load("known")  # a model known at start reloads either way
    dropped = tmp_path / "dropped"
    dropped.mkdir()
    dropped_settings = {"name": "dropped", "implementation": "x.Y"}
    (dropped / "model-settings.json").write_text(json.dumps(dropped_settings))
    if rescan:
        await registry.load("dropped")
        assert registry.get_ready("dropped", None)
    else:
        with pytest.raises(ModelNotFound):
            await registry.load("dropped")
