"""Per model-version statistics and the timing seam."""

from __future__ import annotations

from mlpack.engine.stats import (
    InferEvent,
    InferTiming,
    StatsRecorder,
    close_timing,
    current_timing,
    open_timing,
)


def test_counts_and_durations() -> None:
    stats = StatsRecorder()
    stats.on_infer(InferEvent("m", "1", True, 0.010, InferTiming(queue_wait=0.004)))
    stats.on_infer(InferEvent("m", "1", True, 0.020, InferTiming(batch_size=2)))
    stats.on_infer(InferEvent("m", "1", True, 0.020, InferTiming(batch_size=2, executions=0)))
    stats.on_infer(InferEvent("m", "1", False, 0.5, InferTiming()))
    result = stats.get("m", "1").as_dict()
    inference = result["inference_stats"]
    assert inference["success"] == {"count": 3, "ns": 50_000_000}
    assert inference["fail"] == {"count": 1, "ns": 500_000_000}
    assert inference["queue"] == {"count": 3, "ns": 4_000_000}
    assert inference["compute_infer"] == {"count": 3, "ns": 46_000_000}
    assert result["inference_count"] == 3 and result["execution_count"] == 2
    assert [b["batch_size"] for b in result["batch_stats"]] == [1, 2]
    assert stats.get("other", None).as_dict()["inference_stats"]["success"]["count"] == 0


def test_timing_is_visible_only_while_open() -> None:
    assert current_timing() is None
    timing, token = open_timing()
    assert current_timing() is timing
    close_timing(token)
    assert current_timing() is None
