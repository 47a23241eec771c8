"""Failed predictions: one ERROR line each, rate-limited per model, tracebacks kept."""

from __future__ import annotations

import logging
import pickle

import pytest

from mlpack.engine.failures import FailureLog, attach_traceback, traceback_text
from mlpack.errors import ModelError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _failure() -> ModelError:
    try:
        {}["feature"]
    except KeyError as error:
        return attach_traceback(ModelError("model 'm' failed: 'feature'"), error)  # type: ignore[return-value]
    raise AssertionError


def test_traceback_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(_failure()))
    text = traceback_text(error)
    assert text.startswith("Traceback (most recent call last)") and "KeyError: 'feature'" in text


def test_burst_then_suppressed_count_on_next_window(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    log = FailureLog(burst=2, window=10.0, clock=clock)
    caplog.set_level(logging.ERROR, "mlpack.model")
    written = [log.predict_failed("m", "v1", f"r{i}", _failure()) for i in range(5)]
    assert written == [True, True, False, False, False]
    assert log.predict_failed("other", None, "x", _failure())  # budgets are per model
    clock.now = 10.0
    assert log.predict_failed("m", "v1", "r5", _failure())
    records = [r for r in caplog.records if r.name == "mlpack.model"]
    assert len(records) == 4
    last = records[-1]
    assert "request_id=r5" in last.getMessage()
    assert "(3 similar error(s) suppressed)" in last.getMessage()
    assert last.__dict__["suppressed"] == 3 and last.__dict__["model"] == "m:v1"
    assert last.exc_text is not None and "KeyError: 'feature'" in last.exc_text
    assert "Traceback" not in last.getMessage()  # the message stays one line
    assert records[0].__dict__["suppressed"] == 0
