"""The front-ends benchmark's report: ratios against another checkout (``--against``)."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import frontends


def _row(rps: float, cpu: float) -> dict[str, Any]:
    return {"rps": rps, "cpu_root": cpu, "cpu_children": 0.0}


def test_against_ratios_are_medians_of_per_round_ratios() -> None:
    raw = {
        "mlpack-1fe": {"grpc/c32": [_row(1100, 0.5), _row(1200, 0.6), _row(900, 0.45)]},
        "mlpack-1fe@against": {"grpc/c32": [_row(1000, 0.5), _row(1000, 0.6), _row(1000, 0.6)]},
        "mlserver": {"grpc/c32": [_row(500, 1.0)]},
    }
    ratios = frontends._against_ratios(raw)
    assert ratios["grpc/c32: mlpack-1fe req/s / against"] == pytest.approx(1.1)
    # us/request: 0.5/1100 over 0.5/1000, 0.6/1200 over 0.6/1000, 0.45/900 over 0.6/1000
    assert ratios["grpc/c32: mlpack-1fe server CPU us/request / against"] == pytest.approx(
        1000 / 1200
    )
    assert not any(key.startswith("grpc/c32: mlserver") for key in ratios)


def test_against_server_needs_a_checkout(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="no --against checkout"):
        frontends._start("mlpack-1fe@against", {"mlpack": tmp_path}, tmp_path, None)
