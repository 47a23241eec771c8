"""The supervisor's shared pools: a model loads once per (name, generation), held by every
front-end runner that asked, unloaded by the last release or the death of its holders.

A real default pool of one worker; the test plays two front-ends (pids 101 and 102).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mlpack.errors import MLPackError
from mlpack.server.frontend_link import PoolAcquire, PoolRelease, PoolWorkers
from mlpack.server.pool_host import PoolHost
from mlpack.settings import ModelSettings, Settings
from tests.helpers.server import ASSETS

WAIT = 60.0  # a bound for a hung worker, not a criterion
ANNOUNCED: list[PoolWorkers] = []


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[PoolHost]:
    """The host; what it announces is kept in ``ANNOUNCED`` (cleared per test)."""
    settings = Settings(parallel_workers=1, worker_ping_interval=0)
    echo = ModelSettings.resolve(ASSETS / "models" / "echo" / "model-settings.json")
    shared = PoolHost(settings, [echo], tmp_path)
    assert os.stat(shared.run_folder).st_mode & 0o777 == 0o700
    assert shared.placement.pool is not None
    assert shared.placement.pool.max_data_connections == 4  # 2 x front-ends + 2
    ANNOUNCED.clear()
    shared.announce = ANNOUNCED.append
    async with asyncio.timeout(WAIT):
        await shared.start()
    try:
        yield shared
    finally:
        await shared.close()
    assert not Path(shared.run_folder).exists()


def _echo() -> ModelSettings:
    return ModelSettings.resolve(ASSETS / "models" / "echo" / "model-settings.json")


def _keys(host: PoolHost) -> list[str]:
    """The model keys loaded in the default pool now."""
    return list(host.snapshot("default").models)


async def test_a_model_loads_once_for_every_frontend_and_unloads_with_the_last(
    host: PoolHost,
) -> None:
    async with asyncio.timeout(WAIT):
        first, second = await asyncio.gather(
            host.acquire(PoolAcquire(1, 101, "echo@a", _echo(), 0)),
            host.acquire(PoolAcquire(2, 102, "echo@b", _echo(), 0)),
        )
        assert first.error is None and second.error is None
        assert (first.pool, first.key) == (second.pool, second.key) == ("default", first.key)
        assert first.metadata is not None and first.metadata.name == "echo"
        assert _keys(host) == [first.key]  # one instance in the pool
        snapshot = host.snapshot("default")
        assert len(snapshot.workers) == 1 and snapshot.workers[0].models == {first.key}
        assert Path(snapshot.workers[0].path).parent == Path(host.run_folder)
        # A repository call (generation 5) loads a second instance, once.
        third = await host.acquire(PoolAcquire(3, 101, "echo@c", _echo(), 5))
        again = await host.acquire(PoolAcquire(4, 102, "echo@d", _echo(), 5))
        assert third.key == again.key != first.key
        assert sorted(_keys(host)) == sorted([first.key, third.key])
        await host.release(PoolRelease(5, 101, "echo@a", first.key))
        assert first.key in _keys(host)  # front-end 102 still holds it
        await host.release(PoolRelease(6, 102, "echo@b", first.key))
        assert _keys(host) == [third.key]
        # A front-end that dies releases what it held; the last holder gone, it unloads.
        await host.release_frontend(101)
        assert _keys(host) == [third.key]
        await host.release_frontend(102)
        assert _keys(host) == []
    assert ANNOUNCED and ANNOUNCED[-1].pool == "default" and ANNOUNCED[-1].models == {}


async def test_a_failed_load_is_an_answer_and_can_be_retried(host: PoolHost) -> None:
    broken = ModelSettings.resolve(ASSETS / "models" / "broken" / "model-settings.json")
    async with asyncio.timeout(WAIT):
        answer = await host.acquire(PoolAcquire(1, 101, "broken@a", broken, 0))
        assert isinstance(answer.error, MLPackError) and not answer.key
        assert _keys(host) == []
        answer = await host.acquire(PoolAcquire(2, 101, "broken@b", broken, 0))
        assert answer.error is not None  # tried again, not a cached failure forever
