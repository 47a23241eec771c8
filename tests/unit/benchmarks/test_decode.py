"""The decode micro-benchmark runs its cases through the real decoder and another version."""

from __future__ import annotations

from pathlib import Path

from benchmarks import decode
from mlpack.codecs import tensors
from mlpack.types import Datatype


def test_every_case_decodes_to_its_element_count() -> None:
    for datatype, shape, data in decode.cases().values():
        flat = tensors.decode_values("x", Datatype(datatype), shape, data)
        assert flat.size == tensors.element_count(shape)


def test_against_loads_another_tensors_module() -> None:
    other = decode._load(str(Path(tensors.__file__)))
    assert other is not tensors
    assert other.decode_values("x", Datatype.FP32, [2], [1, 2]).tolist() == [1.0, 2.0]
