"""Which pool each model gets (``engine.pools``) and the settings that choose it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlpack.engine.placement import RunnerPlacement
from mlpack.engine.plan import Measured, estimate
from mlpack.engine.pools import PooledRunner, choose_pool, describe_pool, plan_pools
from mlpack.engine.runner import LocalRunner
from mlpack.engine.workers.pool import WorkerRunner
from mlpack.errors import InvalidSettings
from mlpack.settings import ModelSettings

MiB = 2**20


def model(name: str, **fields: object) -> ModelSettings:
    return ModelSettings(name=name, implementation="x.Y", **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("default", "fields", "expected"),
    [
        (0, {}, ("server", "server", 0, False)),
        (2, {}, ("default", "default", 2, False)),
        (2, {"parallel_workers": 0}, ("server", "server", 0, False)),
        (0, {"parallel_workers": 3}, ("model", "model:m", 3, True)),
        (0, {"instance_count": 3, "preload": False}, ("model", "model:m", 3, False)),
        (0, {"worker_pool": "g"}, ("group", "group:g", 1, True)),
        (4, {"inference_pool_gid": "g"}, ("group", "group:g", 4, True)),
    ],
)
def test_choose_pool(default: int, fields: dict[str, object], expected: tuple[object, ...]) -> None:
    choice = choose_pool(model("m", **fields), default)
    assert (choice.kind, choice.name, choice.size, choice.zygote) == expected


def test_a_group_has_its_largest_count_and_forks_only_when_every_model_preloads() -> None:
    models = [
        model("a", worker_pool="g", parallel_workers=2),
        model("b", worker_pool="g", parallel_workers=5, preload=False),
        model("c", parallel_workers=0),
        model("d"),
    ]
    planned = {p.choice.name: p for p in plan_pools(models, default_workers=1)}
    assert planned["group:g"].choice.size == 5 and planned["group:g"].models == ["a", "b"]
    assert not planned["group:g"].choice.zygote
    assert planned["server"].models == ["c"] and planned["default"].models == ["d"]
    line = describe_pool(planned["group:g"].choice, planned["group:g"].models)
    assert line == "pool group:g: 5 processes: a, b"


def test_estimate_counts_one_copy_with_a_zygote_and_one_per_worker_without() -> None:
    models = [
        model("shared", parallel_workers=4),
        model("copied", parallel_workers=4, preload=False),
        model("local", parallel_workers=0),
        model("unknown", parallel_workers=2),
    ]
    sizes: dict[str, int | None] = {"shared": 100 * MiB, "copied": 100 * MiB, "local": MiB}
    sizes["unknown"] = None
    measured = Measured(process=10 * MiB, models=sizes, problems={"unknown": "failed"})
    memory = {e.pool.choice.name: e.memory for e in estimate(models, 0, measured)}
    assert memory["model:shared"] == 100 * MiB + 5 * 10 * MiB  # zygote + 4 workers, one copy
    assert memory["model:copied"] == 4 * (100 * MiB + 10 * MiB)
    assert memory["server"] == MiB
    assert memory["model:unknown"] is None


def test_placement_gives_each_count_its_runner(tmp_path: Path) -> None:
    placement = RunnerPlacement(1, 1.0, None, models=[])
    local = placement(model("a", parallel_workers=0))
    try:
        assert isinstance(local, LocalRunner)
    finally:
        local._thread.stop()
    assert isinstance(placement(model("b", parallel_workers=2)), PooledRunner)
    assert isinstance(placement(model("c", worker_pool="g")), PooledRunner)
    assert isinstance(placement(model("d")), WorkerRunner)  # the default pool


def test_model_settings_file_reads_other_servers_names(tmp_path: Path) -> None:
    path = tmp_path / "model-settings.json"
    path.write_text(json.dumps({"implementation": "a.B", "instance_count": 3}))
    settings = ModelSettings.resolve(path)
    assert settings.parallel_workers == 3 and settings.notices == []
    path.write_text(json.dumps({"implementation": "a.B", "parallel_workers": -1}))
    with pytest.raises(InvalidSettings, match="parallel_workers"):
        ModelSettings.resolve(path)


async def test_the_default_pool_starts_only_when_a_model_uses_it() -> None:
    placement = RunnerPlacement(2, 1.0, None, models=[model("own", parallel_workers=0)])
    await placement.start()
    try:
        assert placement.pools() == []  # every model known at start has its own count
        late = placement(model("late"))  # a model added later uses the default pool
        assert isinstance(late, PooledRunner)
        pool = await placement._start_default()
        assert [name for name, _ in placement.pools()] == ["default"]
        assert len(pool.workers) == 2
    finally:
        await placement.close()
