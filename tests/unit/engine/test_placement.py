"""``RunnerPlacement`` picks the runner for each model from plain values."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpack.engine.batching import BatchingRunner
from mlpack.engine.placement import RunnerPlacement
from mlpack.engine.registry import ModelRegistry
from mlpack.engine.runner import LocalRunner
from mlpack.engine.workers.interpreters import EnvironmentRunner
from mlpack.engine.workers.pool import WorkerRunner
from mlpack.errors import ModelNotFound
from mlpack.settings import ModelSettings
from tests.helpers.server import ASSETS


def settings(**fields: object) -> ModelSettings:
    return ModelSettings(name="m", implementation="x.Y", **fields)  # type: ignore[arg-type]


def _runner_kind(placement: RunnerPlacement, model: ModelSettings) -> type:
    runner = placement(model)
    try:
        return type(runner)
    finally:
        if isinstance(runner, LocalRunner):  # stop the model thread it started
            runner._thread.stop()


@pytest.mark.parametrize(
    ("workers", "environments", "fields", "expected"),
    [
        (0, False, {}, LocalRunner),
        (2, False, {}, WorkerRunner),
        (0, True, {"parameters": {"environment_path": "/env"}}, EnvironmentRunner),
        (2, True, {"parameters": {"environment_path": "/env"}}, EnvironmentRunner),
        (2, True, {}, WorkerRunner),
        # Without an environments folder, a model naming an environment runs like any other.
        (0, False, {"parameters": {"environment_path": "/env"}}, LocalRunner),
        (0, False, {"max_batch_size": 8}, BatchingRunner),
        (2, True, {"max_batch_size": 8, "parameters": {"environment_path": "/e"}}, BatchingRunner),
    ],
)
def test_placement_chooses_the_runner(
    workers: int, environments: bool, fields: dict[str, object], expected: type, tmp_path: Path
) -> None:
    placement = RunnerPlacement(workers, 1.0, tmp_path if environments else None)
    assert _runner_kind(placement, settings(**fields)) is expected


def test_batching_wraps_the_runner_the_model_would_get(tmp_path: Path) -> None:
    placement = RunnerPlacement(2, 1.0, tmp_path)
    runner = placement(settings(max_batch_size=4, parameters={"environment_path": "/env"}))
    assert isinstance(runner, BatchingRunner) and isinstance(runner.runner, EnvironmentRunner)
    assert runner.batcher.max_batch_size == 4


async def test_registry_answers_readiness_and_queueing() -> None:
    registry = ModelRegistry()  # default placement: threads, batching where asked for
    folder = str(ASSETS / "models" / "echo")
    plain = ModelSettings(name="plain", implementation="models.EchoModel", folder=folder)
    batched = ModelSettings(
        name="batched", implementation="models.EchoModel", folder=folder, max_batch_size=4
    )
    registry.add(plain)
    assert registry.ready("plain") is False and registry.queues("plain") is False
    try:
        await registry.load_all([plain, batched])
        assert registry.ready("plain") and registry.ready("batched")
        # The model thread queues too: a client who leaves is noticed in every mode.
        assert registry.queues("plain") is True and registry.queues("batched") is True
    finally:
        await registry.close()
    assert registry.ready("plain") is False
    with pytest.raises(ModelNotFound):
        registry.ready("nope")
    with pytest.raises(ModelNotFound):
        registry.queues("nope")
