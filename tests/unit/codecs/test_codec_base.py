import subprocess
import sys
from typing import Any, List  # noqa: UP035 (the legacy alias is what these tests feed the codecs)

import numpy as np
import pytest

from mlpack.codecs import (
    Base64Codec,
    DatetimeCodec,
    InputCodec,
    NumpyCodec,
    NumpyRequestCodec,
    StringCodec,
    StringRequestCodec,
    find_input_codec,
    find_request_codec,
    register_input_codec,
)
from mlpack.codecs import base as base_module
from mlpack.types import Datatype, ResponseOutput


def test_find_input_codec_by_content_type() -> None:
    assert find_input_codec(content_type="np") is NumpyCodec
    assert find_input_codec(content_type="str") is StringCodec
    assert find_input_codec(content_type="base64") is Base64Codec
    assert find_input_codec(content_type="datetime") is DatetimeCodec
    assert find_input_codec(content_type="nope") is None


def test_find_request_codec_by_content_type() -> None:
    from mlpack.codecs.pandas import PandasCodec

    assert find_request_codec(content_type="np") is NumpyRequestCodec
    assert find_request_codec(content_type="str") is StringRequestCodec
    assert find_request_codec(content_type="pd") is PandasCodec
    assert find_request_codec(content_type="base64") is None


@pytest.mark.parametrize("hint", [List[str], list[str]])  # noqa: UP006
def test_list_hints_compare_equal(hint: Any) -> None:
    assert find_input_codec(type_hint=hint) is StringCodec


def test_find_by_type_hint() -> None:
    from datetime import datetime

    import pandas as pd

    assert find_input_codec(type_hint=np.ndarray) is NumpyCodec
    assert find_input_codec(type_hint=list[bytes]) is Base64Codec
    assert find_input_codec(type_hint=list[datetime]) is DatetimeCodec
    assert find_input_codec(type_hint=list[int]) is None
    assert find_request_codec(type_hint=pd.DataFrame).ContentType == "pd"  # type: ignore[union-attr]
    assert find_request_codec(type_hint=pd.Series) is None


def test_find_by_payload() -> None:
    from datetime import datetime

    assert find_input_codec(payload=np.zeros(2)) is NumpyCodec
    assert find_input_codec(payload=["a"]) is StringCodec
    assert find_input_codec(payload=[b"a"]) is Base64Codec
    assert find_input_codec(payload=[datetime(2024, 1, 1)]) is DatetimeCodec
    assert find_input_codec(payload=object()) is None


def test_content_type_wins_over_payload() -> None:
    assert find_input_codec(content_type="str", payload=np.zeros(2)) is StringCodec


def test_register_custom_codec() -> None:
    @register_input_codec
    class UpperCodec(InputCodec):
        ContentType = "test-upper"

        @classmethod
        def encode_output(cls, name: str, payload: Any, **kwargs: Any) -> ResponseOutput:
            return ResponseOutput(
                name=name, shape=[1], datatype=Datatype.BYTES, data=[payload.upper()]
            )

    try:
        codec = find_input_codec(content_type="test-upper")
        assert codec is UpperCodec
        assert codec.encode_output("x", "abc").data == ["ABC"]
    finally:
        base_module._input_codecs._by_content_type.pop("test-upper")


def test_base_class_methods_raise_not_implemented() -> None:
    with pytest.raises(NotImplementedError):
        InputCodec.decode_input(None)  # type: ignore[arg-type]
    assert InputCodec.can_encode(1) is False


def test_importing_codecs_does_not_import_pandas() -> None:
    code = (
        "import sys, mlpack.codecs as c\n"
        "c.find_input_codec(content_type='np'); c.find_request_codec(content_type='pd')\n"
        "assert 'pandas' not in sys.modules, 'pandas was imported'\n"
        "c.find_request_codec(payload=[1.0])\n"
        "assert 'pandas' not in sys.modules, 'pandas was imported by a payload lookup'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=str(__import__("pathlib").Path(__file__).parents[3]),
    )
    assert result.returncode == 0, result.stderr


def test_all_names_exported() -> None:
    import mlpack.codecs as codecs

    for name in codecs.__all__:
        assert getattr(codecs, name) is not None, name
