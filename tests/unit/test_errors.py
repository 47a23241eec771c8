from __future__ import annotations

import pickle

import pytest

from mlpack import errors


@pytest.mark.parametrize(
    "error",
    [
        errors.InvalidRequest("bad"),
        errors.ModelNotFound("m", "2"),
        errors.ModelNotReady("loading"),
        errors.Overloaded("full", retry_after=3.0),
        errors.ModelError("boom"),
        errors.WorkerError("died"),
        errors.ModelLoadError("nope"),
        errors.DeadlineExceeded("late"),
    ],
)
def test_errors_pickle_with_message_status_and_state(error: errors.MLPackError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert copy.message == error.message and copy.status == error.status
    assert copy.__dict__ == error.__dict__


def test_statuses() -> None:
    assert errors.ModelNotFound("m").status == 404
    assert errors.ModelNotFound("m").message == "model 'm' not found"
    assert errors.InvalidRequest("x").status == 400
    assert errors.ModelNotReady("x").status == 503
