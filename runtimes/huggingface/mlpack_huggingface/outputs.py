"""A pipeline's answers (one per input text) → protocol outputs.

Answers that are flat records with the same keys (``{"label", "score"}``,
``{"generated_text"}``, ``{"summary_text"}``, ...) become one typed output per key, shape
``[N, 1]``; anything else becomes one BYTES output ``output`` holding each answer as JSON.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from mlpack.codecs.tensors import ndarray_to_data
from mlpack.types import Datatype, Parameters, ResponseOutput

GENERIC_OUTPUT = "output"


def answers_to_outputs(answers: list[Any]) -> list[ResponseOutput]:
    """One output per record key when every answer is a flat record, else JSON strings."""
    records = [_single(answer) for answer in answers]
    if records and all(isinstance(r, dict) for r in records):
        keys = list(records[0])
        if keys and all(list(r) == keys and all(_scalar(v) for v in r.values()) for r in records):
            return [_column(key, [r[key] for r in records]) for key in keys]
    texts = [json.dumps(answer, default=_plain) for answer in answers]
    return [
        ResponseOutput(
            name=GENERIC_OUTPUT,
            datatype=Datatype.BYTES,
            shape=[len(texts), 1],
            data=texts,
            parameters=Parameters(content_type="str"),
        )
    ]


def _single(answer: Any) -> Any:
    # Text generation answers a list of sequences per input; one sequence → that record.
    return answer[0] if isinstance(answer, list) and len(answer) == 1 else answer


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, np.generic))


def _column(name: str, values: list[Any]) -> ResponseOutput:
    shape = [len(values), 1]
    if all(isinstance(v, str) for v in values):
        return ResponseOutput(
            name=name,
            datatype=Datatype.BYTES,
            shape=shape,
            data=values,
            parameters=Parameters(content_type="str"),
        )
    array = np.asarray(values)
    if array.dtype.kind == "f":
        array = array.astype(np.float64)
    elif array.dtype.kind in "iu":
        array = array.astype(np.int64)
    datatype = {"f": Datatype.FP64, "i": Datatype.INT64, "b": Datatype.BOOL}.get(array.dtype.kind)
    if datatype is None:
        texts = [str(v) for v in values]
        return ResponseOutput(name=name, datatype=Datatype.BYTES, shape=shape, data=texts)
    return ResponseOutput(name=name, datatype=datatype, shape=shape, data=ndarray_to_data(array))


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
