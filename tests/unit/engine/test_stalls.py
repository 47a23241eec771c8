"""``StallGuard``: the bound on handing a stream's response to its client."""

from __future__ import annotations

import asyncio
import logging

import pytest

from mlpack.engine.stalls import StallGuard
from mlpack.errors import DeadlineExceeded, StreamStalled
from mlpack.settings import ModelSettings, Settings


async def test_a_hand_over_that_completes_returns_its_value() -> None:
    guard = StallGuard("m", "1", 30.0)

    async def delivered() -> str:
        await asyncio.sleep(0)
        return "sent"

    assert await guard.handover(delivered()) == "sent"
    assert not guard.stalled


async def test_a_hand_over_that_never_completes_abandons_the_stream(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[tuple[str, str]] = []
    guard = StallGuard("m", "1", 0.01, lambda name, version: seen.append((name, version)))
    never = asyncio.Event()
    with (
        caplog.at_level(logging.WARNING, "mlpack.streams"),
        pytest.raises(StreamStalled) as stalled,
    ):
        await guard.handover(never.wait())
    assert isinstance(stalled.value, DeadlineExceeded)  # 504 / DEADLINE_EXCEEDED
    assert "stream_stall_timeout" in str(stalled.value)
    assert seen == [("m", "1")]
    assert guard.stalled
    assert "model 'm' version '1': stream abandoned" in caplog.text


async def test_no_limit_waits_as_long_as_the_delivery_takes() -> None:
    for limit in (0.0, None):
        guard = StallGuard("m", None, limit)
        gate = asyncio.Event()
        waiting = asyncio.ensure_future(guard.handover(gate.wait()))
        for _ in range(50):
            await asyncio.sleep(0)
        assert not waiting.done()
        gate.set()
        assert await waiting is True


async def test_a_failing_observer_does_not_keep_the_stream() -> None:
    def broken(name: str, version: str) -> None:
        raise RuntimeError("observer bug")

    guard = StallGuard("m", None, 0.01, broken)
    with pytest.raises(StreamStalled):
        await guard.handover(asyncio.Event().wait())


def test_settings_default_and_model_override() -> None:
    assert Settings().stream_stall_timeout == 60.0
    assert ModelSettings(name="m", implementation="x.Y").stream_stall_timeout is None
    model = ModelSettings(name="m", implementation="x.Y", stream_stall_timeout=0)
    assert model.stream_stall_timeout == 0
    with pytest.raises(ValueError, match="stream_stall_timeout"):
        Settings(stream_stall_timeout=-1)
