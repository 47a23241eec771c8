"""The registry's observer seam: one event per request that reached a known model version."""

from __future__ import annotations

import pytest

from mlpack.engine.registry import ModelRegistry
from mlpack.engine.stats import InferEvent, current_timing
from mlpack.errors import InvalidRequest, ModelNotFound
from mlpack.settings import ModelSettings
from mlpack.types import InferenceRequest, InferenceResponse, MetadataModelResponse


class Recorder:
    def __init__(self) -> None:
        self.events: list[InferEvent] = []

    def on_infer(self, event: InferEvent) -> None:
        self.events.append(event)


class TimedRunner:
    """Reports a queue wait and a batch through the open timing, as a batcher would."""

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings

    async def load(self) -> MetadataModelResponse:
        return MetadataModelResponse(name=self.settings.name)

    async def predict(self, request: InferenceRequest) -> InferenceResponse:
        timing = current_timing()
        assert timing is not None
        timing.queue_wait, timing.batch_size = 0.001, 3
        if request.id == "fail":
            raise RuntimeError("model failed")
        return InferenceResponse(model_name="m", outputs=[])


def request(request_id: str = "ok") -> InferenceRequest:
    return InferenceRequest(
        id=request_id, inputs=[{"name": "a", "shape": [1], "datatype": "FP32", "data": [1]}]
    )


async def test_events_for_success_and_failure_only_for_known_models() -> None:
    recorder = Recorder()
    registry = ModelRegistry(runner_factory=TimedRunner, observer=recorder)
    await registry.load_version(ModelSettings(name="m", parameters={"version": "2"}))
    await registry.infer("m", None, request())
    with pytest.raises(RuntimeError):
        await registry.infer("m", "2", request("fail"))
    with pytest.raises(InvalidRequest):
        await registry.infer("m", None, InferenceRequest(inputs=[]))
    with pytest.raises(ModelNotFound):
        await registry.infer("nope", None, request())
    assert [(e.model_name, e.model_version, e.ok) for e in recorder.events] == [
        ("m", "2", True),
        ("m", "2", False),
        ("m", "2", False),
    ]
    first = recorder.events[0]
    assert first.timing.queue_wait == 0.001 and first.timing.batch_size == 3
    assert first.compute == max(0.0, first.duration - 0.001)


async def test_local_runner_reports_queue_wait_and_model_context(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    (folder / "models.py").write_text(
        "from mlpack import MLModel\n"
        "from mlpack._context import current_model\n"
        "from mlpack.types import InferenceResponse\n"
        "class M(MLModel):\n"
        "    def predict(self, payload):\n"
        "        name, version = current_model()\n"
        "        return InferenceResponse(\n"
        "            model_name=name, model_version=version + '!', outputs=[])\n"
    )
    recorder = Recorder()
    registry = ModelRegistry(observer=recorder)
    settings = ModelSettings(name="ctx", implementation="models.M", parameters={"version": "5"})
    settings.folder = str(folder)
    await registry.load_version(settings)
    try:
        response = await registry.infer("ctx", None, request())
    finally:
        await registry.close()
    assert response.model_version == "5!"
    [event] = recorder.events
    assert (
        event.ok
        and event.timing.parallel_queue == 1
        and 0 < event.timing.queue_wait <= event.duration
    )
