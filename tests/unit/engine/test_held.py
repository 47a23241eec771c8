"""``HeldPoolRunner``: the order of acquire, start, stop and release, and a failed start."""

from __future__ import annotations

from typing import Any

import pytest

from mlpack.engine.workers.held import HeldPoolRunner
from mlpack.engine.workers.pool import WorkerRunner
from mlpack.settings import ModelSettings
from mlpack.types import MetadataModelResponse


class _Recording(HeldPoolRunner):
    """Records each step; ``fail_start``/``fail_release`` raise there."""

    def __init__(self, fail_start: bool = False, fail_release: bool = False) -> None:
        super().__init__(ModelSettings(name="m", implementation="x.Y"), concurrency=2)
        self.steps: list[str] = []
        self.fail_start = fail_start
        self.fail_release = fail_release

    async def _acquire(self) -> tuple[WorkerRunner, MetadataModelResponse | None]:
        self.steps.append(f"acquire {self._user}")
        pool: Any = object()
        return WorkerRunner(self.settings, pool, key="m#1"), None

    async def _start(
        self, runner: WorkerRunner, metadata: MetadataModelResponse | None
    ) -> MetadataModelResponse:
        self.steps.append(f"start {runner.key}")
        if self.fail_start:
            raise RuntimeError("cannot start")
        return MetadataModelResponse(name="m")

    async def _stop(self, runner: WorkerRunner) -> None:
        self.steps.append(f"stop {runner.key}")

    async def _release(self, runner: WorkerRunner) -> None:
        self.steps.append(f"release {runner.key}")
        if self.fail_release:
            raise RuntimeError("cannot release")


async def test_load_holds_and_unload_stops_then_releases_once() -> None:
    runner = _Recording()
    assert runner.pool is None and runner.concurrency == 2
    assert (await runner.load()).name == "m"
    assert runner.pool is not None
    await runner.unload()
    await runner.unload()  # a second unload does nothing
    user = runner._user
    assert user.startswith("m@")
    assert runner.steps == [f"acquire {user}", "start m#1", "stop m#1", "release m#1"]
    assert runner.pool is None


@pytest.mark.parametrize("fail_release", [False, True])
async def test_a_failed_start_releases_and_raises_the_starts_error(fail_release: bool) -> None:
    runner = _Recording(fail_start=True, fail_release=fail_release)
    with pytest.raises(RuntimeError, match="cannot start"):
        await runner.load()
    assert runner.steps[1:] == ["start m#1", "release m#1"]
    assert runner.pool is None
