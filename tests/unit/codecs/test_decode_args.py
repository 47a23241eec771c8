import asyncio
from datetime import datetime
from typing import Any, List  # noqa: UP035 (the legacy alias is what these tests feed the codecs)

import numpy as np
import pandas as pd
import pytest

from mlpack.codecs import decode_args
from mlpack.errors import InvalidRequest, ModelError
from mlpack.types import InferenceRequest, InferenceResponse, MetadataTensor


def _request(**inputs: dict[str, Any]) -> InferenceRequest:
    return InferenceRequest(id="req-1", inputs=[{"name": n, **t} for n, t in inputs.items()])


NUMBERS = {"shape": [3], "datatype": "INT32", "data": [1, 2, 3]}
WORDS = {"shape": [2], "datatype": "BYTES", "data": ["x", "y"]}


class Model:
    name = "m"
    version = "v1"
    outputs: list[MetadataTensor] | None = None

    @decode_args
    async def predict(
        self,
        a: np.ndarray,
        b: List[str],  # noqa: UP006
        c: np.ndarray | None = None,
    ) -> tuple[np.ndarray, list[str]]:
        self.seen = (a, b, c)
        return a * 2, [s.upper() for s in b]


def _run(coroutine: Any) -> InferenceResponse:
    return asyncio.run(coroutine)  # type: ignore[no-any-return]


def test_tuple_return_gives_numbered_outputs() -> None:
    model = Model()
    response = _run(model.predict(_request(a=NUMBERS, b=WORDS)))
    assert (response.model_name, response.model_version, response.id) == ("m", "v1", "req-1")
    assert [o.name for o in response.outputs] == ["output-0", "output-1"]
    assert response.outputs[0].data == [2, 4, 6]
    assert response.outputs[0].shape == [3, 1]
    assert response.outputs[1].data == ["X", "Y"]
    a, b, c = model.seen
    assert a.shape == (3, 1) and b == ["x", "y"] and c is None


def test_optional_input_decodes_when_present() -> None:
    model = Model()
    _run(
        model.predict(
            _request(
                a=NUMBERS, b=WORDS, c={"shape": [1, 2], "datatype": "FP32", "data": [0.5, 1.5]}
            )
        )
    )
    assert model.seen[2].tolist() == [[0.5, 1.5]]


def test_metadata_names_outputs() -> None:
    model = Model()
    model.outputs = [
        MetadataTensor(name="doubled", datatype="INT32", shape=[-1, 1]),
        MetadataTensor(name="upper", datatype="BYTES", shape=[-1, 1]),
    ]
    response = _run(model.predict(_request(a=NUMBERS, b=WORDS)))
    assert [o.name for o in response.outputs] == ["doubled", "upper"]


def test_missing_required_input_is_named() -> None:
    with pytest.raises(InvalidRequest, match="missing required input 'b'"):
        _run(Model().predict(_request(a=NUMBERS)))


def test_unexpected_input_is_named() -> None:
    with pytest.raises(InvalidRequest, match=r"unexpected input.*'zz'"):
        _run(Model().predict(_request(a=NUMBERS, b=WORDS, zz=NUMBERS)))


def test_input_with_wrong_datatype_for_hint() -> None:
    with pytest.raises(InvalidRequest, match=r"'b'.*BYTES"):
        _run(Model().predict(_request(a=NUMBERS, b=NUMBERS)))


class SyncModel:
    name = "sync"
    version = None

    @decode_args
    def predict(self, words: list[str], when: list[datetime], blobs: list[bytes]) -> list[str]:
        return [f"{w}-{t.year}-{len(b)}" for w, t, b in zip(words, when, blobs, strict=True)]


def test_sync_predict_with_builtin_generics() -> None:
    request = _request(
        words={"shape": [1], "datatype": "BYTES", "data": ["hi"]},
        when={"shape": [1], "datatype": "BYTES", "data": ["2021-03-04T05:06:07"]},
        blobs={"shape": [1], "datatype": "BYTES", "data": ["AP8A"]},
    )
    response = SyncModel().predict(request)
    assert isinstance(response, InferenceResponse)
    assert response.model_version is None
    assert [o.name for o in response.outputs] == ["output-0"]
    assert response.outputs[0].data == ["hi-2021-3"]


class FrameModel:
    name = "frame"
    version = "2"

    @decode_args
    async def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(total=frame["a"] + frame["b"])


def test_dataframe_argument_gets_whole_request() -> None:
    request = _request(
        a={"shape": [2], "datatype": "FP64", "data": [1, 2]},
        b={"shape": [2], "datatype": "FP64", "data": [10, 20]},
    )
    response = _run(FrameModel().predict(request))
    assert [o.name for o in response.outputs] == ["a", "b", "total"]
    assert response.outputs[2].data == [11.0, 22.0]


class UnannotatedModel:
    name = "u"
    version = None

    @decode_args
    async def predict(self, x, tag):  # type: ignore[no-untyped-def]
        return x * 2, tag


def test_unannotated_arguments_use_content_type_or_numpy() -> None:
    request = _request(
        x={"shape": [2], "datatype": "FP64", "data": [1, 2]},
        tag={
            "shape": [1],
            "datatype": "BYTES",
            "data": ["t"],
            "parameters": {"content_type": "str"},
        },
    )
    response = _run(UnannotatedModel().predict(request))
    assert response.outputs[0].shape == [2, 1] and response.outputs[0].data == [2.0, 4.0]
    assert response.outputs[1].data == ["t"]


def test_unencodable_result_is_a_model_error() -> None:
    class Bad:
        name = "bad"
        version = None

        @decode_args
        def predict(self, x: np.ndarray):  # type: ignore[no-untyped-def]
            return {"not": "encodable"}

    with pytest.raises(ModelError, match=r"model 'bad'.*dict.*'output-0'"):
        Bad().predict(_request(x=NUMBERS))


def test_unsupported_hint_fails_at_decoration() -> None:
    with pytest.raises(TypeError, match=r"'x'.*no codec"):

        @decode_args
        async def predict(self: Any, x: dict[str, int]) -> np.ndarray: ...


def test_wrapper_keeps_name_and_async_kind() -> None:
    assert Model.predict.__name__ == "predict"
    assert asyncio.iscoroutinefunction(Model.predict)
    assert not asyncio.iscoroutinefunction(SyncModel.predict)
