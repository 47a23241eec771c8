import numpy as np
import pandas as pd
import pytest

from mlpack.codecs import PandasCodec
from mlpack.errors import InvalidRequest
from mlpack.types import InferenceRequest, MetadataTensor


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "a": [1, 2, 3],
            "b": ["x", "y", "z"],
            "c": [1.5, np.nan, 2.0],
            "t": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]),
        }
    )


def test_request_round_trip() -> None:
    frame = _frame()
    request = PandasCodec.encode_request(frame)
    assert request.parameters is not None and request.parameters.content_type == "pd"
    assert [i.name for i in request.inputs] == ["a", "b", "c", "t"]
    assert [i.parameters.content_type if i.parameters else None for i in request.inputs] == [
        None,
        "str",
        None,
        "datetime",
    ]
    decoded = PandasCodec.decode_request(InferenceRequest(**request.model_dump()))
    pd.testing.assert_frame_equal(decoded, frame, check_dtype=False)
    assert decoded["a"].tolist() == [1, 2, 3]
    assert np.isnan(decoded["c"][1])


def test_response_round_trip() -> None:
    frame = _frame()
    response = PandasCodec.encode_response("m", frame, model_version="1")
    assert (response.model_name, response.model_version) == ("m", "1")
    assert [o.shape for o in response.outputs] == [[3, 1]] * 4
    pd.testing.assert_frame_equal(PandasCodec.decode_response(response), frame, check_dtype=False)


def test_each_column_decodes_by_its_content_type() -> None:
    request = InferenceRequest(
        inputs=[
            {
                "name": "img",
                "shape": [2],
                "datatype": "BYTES",
                "data": ["aGk=", "AP8="],
                "parameters": {"content_type": "base64"},
            },
            {"name": "n", "shape": [2], "datatype": "INT32", "data": [7, 8]},
            {"name": "s", "shape": [2], "datatype": "BYTES", "data": ["p", "q"]},
        ]
    )
    frame = PandasCodec.decode_request(request)
    assert frame["img"].tolist() == [b"hi", b"\x00\xff"]
    assert frame["n"].tolist() == [7, 8]
    assert frame["s"].tolist() == ["p", "q"]


def test_metadata_content_type_applies_to_columns() -> None:
    request = InferenceRequest(
        inputs=[
            {"name": "when", "shape": [1], "datatype": "BYTES", "data": ["2024-05-06T07:08:09"]}
        ]
    )
    metadata = {
        "when": MetadataTensor(
            name="when", datatype="BYTES", shape=[-1], parameters={"content_type": "datetime"}
        )
    }
    frame = PandasCodec.decode_request(request, metadata_inputs=metadata)
    assert frame["when"][0] == pd.Timestamp("2024-05-06T07:08:09")


def test_multi_value_column_holds_rows() -> None:
    request = InferenceRequest(
        inputs=[{"name": "v", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}]
    )
    frame = PandasCodec.decode_request(request)
    assert [row.tolist() for row in frame["v"]] == [[1, 2, 3], [4, 5, 6]]
    again = PandasCodec.encode_request(frame)
    assert again.inputs[0].shape == [2, 3]
    assert again.inputs[0].data == [1, 2, 3, 4, 5, 6]


def test_row_count_mismatch_names_input() -> None:
    request = InferenceRequest(
        inputs=[
            {"name": "a", "shape": [2], "datatype": "FP32", "data": [1, 2]},
            {"name": "b", "shape": [3], "datatype": "FP32", "data": [1, 2, 3]},
        ]
    )
    with pytest.raises(InvalidRequest, match="'b' has 3 rows"):
        PandasCodec.decode_request(request)


def test_unknown_column_content_type() -> None:
    request = InferenceRequest(
        inputs=[
            {
                "name": "a",
                "shape": [1],
                "datatype": "FP32",
                "data": [1],
                "parameters": {"content_type": "zzz"},
            }
        ]
    )
    with pytest.raises(InvalidRequest, match=r"'a'.*'zzz'"):
        PandasCodec.decode_request(request)


def test_can_encode() -> None:
    assert PandasCodec.can_encode(_frame())
    assert not PandasCodec.can_encode(np.zeros(2))


def test_missing_pandas_gives_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pandas", None)
    request = InferenceRequest(
        inputs=[{"name": "a", "shape": [1], "datatype": "FP32", "data": [1]}]
    )
    with pytest.raises(ImportError, match=r"mlpack\[pandas\]"):
        PandasCodec.decode_request(request)
