"""``encode_inference_response``: the JSON body is ``model_dump(exclude_none=True)``'s."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from mlpack.server.rest import encode_inference_response
from mlpack.server.rest_io import json_default
from mlpack.types import InferenceResponse, Parameters, ResponseOutput

CASES = [
    InferenceResponse(
        model_name="m",
        id="a",
        outputs=[ResponseOutput(name="y", shape=[2], datatype="FP32", data=np.ones(2, np.float32))],
    ),
    InferenceResponse(
        model_name="m",
        model_version="v1",
        id="",
        outputs=[
            ResponseOutput(name="s", shape=[2], datatype="BYTES", data=[b"a", "b"]),
            ResponseOutput(name="z", shape=[1, 1], datatype="INT64", data=[[3]]),
            ResponseOutput(name="n", shape=[1], datatype="FP64", data=[None]),
        ],
    ),
    InferenceResponse(model_name="m", outputs=[]),
    # With parameters somewhere: the general path.
    InferenceResponse(
        model_name="m",
        parameters=Parameters(content_type="np"),
        outputs=[ResponseOutput(name="y", shape=[1], datatype="FP32", data=[1.5])],
    ),
    InferenceResponse(
        model_name="m",
        outputs=[
            ResponseOutput(
                name="y",
                shape=[1],
                datatype="FP32",
                data=[1.5],
                parameters=Parameters(content_type="np"),
            )
        ],
    ),
    InferenceResponse(
        model_name="m", outputs=[ResponseOutput(name="y", shape=[0], datatype="FP32")]
    ),
]


@pytest.mark.parametrize("response", CASES)
def test_the_body_is_the_responses_own_dump(response: InferenceResponse) -> None:
    dump = response.model_copy(deep=True).model_dump(exclude_none=True)
    if dump.get("parameters") == {}:
        del dump["parameters"]
    expected = orjson.loads(
        orjson.dumps(dump, default=json_default, option=orjson.OPT_SERIALIZE_NUMPY)
    )
    encoded = encode_inference_response(response)
    assert orjson.loads(encoded.body) == expected
    assert list(orjson.loads(encoded.body)) == list(expected)  # the same key order
