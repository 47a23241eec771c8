"""The error tree is closed, drawn in its docstring, and every error survives pickling."""

from __future__ import annotations

import pickle

import pytest

from mlpack import errors
from tests.helpers.errors import error_classes, sample, samples

ERRORS = samples()
IDS = [type(error).__name__ for error in ERRORS]


def test_the_sweep_finds_the_whole_tree() -> None:
    names = {cls.__name__ for cls in error_classes()}
    # A few from every corner: server, engine, client, batch job, packaging, scaffold.
    assert {
        "ModelNotFound",
        "PortInUse",
        "ServerError",
        "Timeout",
        "SplitError",
        "InvalidLine",
        "JobInterrupted",
        "BuildError",
        "InvalidEnvironment",
        "ScaffoldError",
    } <= names


@pytest.mark.parametrize("cls", error_classes(), ids=lambda cls: cls.__name__)
def test_every_error_lives_in_the_tree_and_is_drawn(cls: type[errors.MLPackError]) -> None:
    assert cls.__module__ == "mlpack.errors", f"{cls.__name__} is defined outside mlpack.errors"
    assert getattr(errors, cls.__name__) is cls
    assert f"── {cls.__name__} (" in (errors.__doc__ or "") or cls is errors.MLPackError


@pytest.mark.parametrize("error", ERRORS, ids=IDS)
def test_errors_pickle_with_message_status_and_state(error: errors.MLPackError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert copy.message == error.message and copy.status == error.status
    assert copy.__dict__ == error.__dict__
    assert str(copy) == str(error)


@pytest.mark.parametrize("error", ERRORS, ids=IDS)
def test_every_status_is_an_int_code(error: errors.MLPackError) -> None:
    status = int(error.status)
    assert 100 <= status <= 599 or status == 130  # 130: an interrupted batch job's exit code


def test_old_import_paths_still_work() -> None:
    from mlpack.client.errors import ClientError, ServerError, Timeout, TransportError
    from mlpack.environments import InvalidEnvironment
    from mlpack.environments.pack import BuildError
    from mlpack.infer.batching import SplitError
    from mlpack.infer.job import JobInterrupted
    from mlpack.infer.output import OutputError
    from mlpack.infer.reader import InvalidLine
    from mlpack.scaffold import ScaffoldError
    from mlpack.server.sockets import PortInUse

    moved = [
        BuildError,
        ClientError,
        ServerError,
        Timeout,
        TransportError,
        InvalidEnvironment,
        SplitError,
        JobInterrupted,
        OutputError,
        InvalidLine,
        ScaffoldError,
        PortInUse,
    ]
    assert all(getattr(errors, cls.__name__) is cls for cls in moved)


def test_statuses() -> None:
    assert errors.ModelNotFound("m").status == 404
    assert errors.ModelNotFound("m").message == "model 'm' not found"
    assert errors.InvalidRequest("x").status == 400
    assert errors.ModelNotReady("x").status == 503
    assert sample(errors.ServerError).status == 503 and not sample(errors.ClientError).retryable
