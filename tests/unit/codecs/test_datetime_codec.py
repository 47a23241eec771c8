from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlpack.codecs import DatetimeCodec
from mlpack.errors import InvalidRequest
from mlpack.types import RequestInput


@given(st.lists(st.datetimes(timezones=st.none() | st.just(timezone(timedelta(hours=2))))))
def test_round_trip(payload: list[datetime]) -> None:
    output = DatetimeCodec.encode_output("t", payload)
    assert output.data == [item.isoformat() for item in payload]
    assert DatetimeCodec.decode_output(output) == payload
    request_input = DatetimeCodec.encode_input("t", payload)
    assert DatetimeCodec.decode_input(RequestInput(**request_input.model_dump())) == payload


def test_decodes_iso_strings() -> None:
    request_input = RequestInput(
        name="t", shape=[2], datatype="BYTES", data=["2024-02-29T12:30:00", "2024-01-01T00:00:00Z"]
    )
    assert DatetimeCodec.decode_input(request_input) == [
        datetime(2024, 2, 29, 12, 30),
        datetime(2024, 1, 1, tzinfo=UTC),
    ]


def test_invalid_datetime_names_input() -> None:
    request_input = RequestInput(name="when", shape=[1], datatype="BYTES", data=["yesterday"])
    with pytest.raises(InvalidRequest, match=r"'when'.*'yesterday'"):
        DatetimeCodec.decode_input(request_input)
