"""Deadlines from request parameters (``deadlines.timeout_parameter``)."""

from __future__ import annotations

import pytest

from mlpack.engine.deadlines import timeout_parameter
from mlpack.errors import InvalidRequest
from mlpack.types import Parameters


def test_the_timeout_parameter_is_microseconds_read_from_parameters_extras() -> None:
    assert timeout_parameter(None) is None
    assert timeout_parameter(Parameters(headers={"a": "b"})) is None
    assert timeout_parameter(Parameters(timeout=0)) is None
    assert timeout_parameter(Parameters(timeout=2_500_000)) == 2.5


@pytest.mark.parametrize("value", [-1, "5", True])
def test_a_bad_timeout_parameter_is_an_invalid_request(value: object) -> None:
    with pytest.raises(InvalidRequest, match="'timeout' must be a non-negative number"):
        timeout_parameter(Parameters(timeout=value))
