from __future__ import annotations

from pathlib import Path

import pytest

from mlpack.infer.reader import InvalidLine, count_lines, iter_lines, parse_line


def test_parse_line_generates_ids_and_keeps_given_ones() -> None:
    body = b'{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}'
    assert parse_line(4, body).id == "line-5"
    assert parse_line(0, body.replace(b"{", b'{"id":"mine",', 1)).id == "mine"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty line"),
        (b"{oops", "not valid JSON"),
        (b"[1]", "JSON object"),
        (b'{"inputs": []}', "non-empty list"),
        (b'{"inputs": [{"name": "x", "shape": [-1], "datatype": "FP32", "data": []}]}', "shape"),
        (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP99", "data": [1]}]}', "datatype"),
        (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32"}]}', "'data' is missing"),
    ],
)
def test_invalid_lines(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidLine, match=reason) as caught:
        parse_line(2, raw)
    assert caught.value.request_id == "line-3"


def test_iter_and_count_lines(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"a\nb\nc")
    assert count_lines(path) == 3
    assert list(iter_lines(path, start=1)) == [(1, b"b\n"), (2, b"c")]
