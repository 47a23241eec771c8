"""``FailedLinesWriter``: which lines are re-sent; the output is rewritten once all are answered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlpack.infer.output import OrderedWriter, OutputError
from mlpack.infer.rerun import FailedLinesWriter


def _ok(index: int) -> bytes:
    return json.dumps({"id": f"line-{index + 1}", "outputs": [{"data": [index]}]}).encode() + b"\n"


def _error(index: int) -> bytes:
    return (
        json.dumps({"id": f"line-{index + 1}", "line": index + 1, "error": "boom"}).encode() + b"\n"
    )


@pytest.fixture
def finished(tmp_path: Path) -> tuple[Path, Path]:
    """A finished job of 10 lines whose lines 2, 5 and 9 (0-based) failed."""
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(f'{{"n": {i}}}\n' for i in range(10)))
    out = tmp_path / "out.jsonl"
    writer = OrderedWriter(out, inp)
    for index in range(10):
        record = _error(index) if index in (2, 5, 9) else _ok(index)
        writer.put(index, record, record if index in (2, 5, 9) else None)
    writer.close(complete=True)
    return inp, out


def test_only_failed_lines_are_read_again(finished: tuple[Path, Path]) -> None:
    inp, out = finished
    writer = FailedLinesWriter(out, inp)
    assert [index for index, _ in writer.input_lines(inp)] == [2, 5, 9]
    assert writer.lines_to_send == 3
    writer.close(complete=False)


def test_an_unfinished_rerun_leaves_the_output_as_it_was(finished: tuple[Path, Path]) -> None:
    inp, out = finished
    before = out.read_bytes()
    writer = FailedLinesWriter(out, inp)
    writer.put(2, _ok(2))
    writer.drain()
    writer.close(complete=False)
    assert out.read_bytes() == before
    assert not list(out.parent.glob("*.tmp"))


def test_a_finished_rerun_replaces_lines_in_place(finished: tuple[Path, Path]) -> None:
    inp, out = finished
    writer = FailedLinesWriter(out, inp)
    writer.put(9, _ok(9))
    writer.put(5, _error(5), _error(5))  # still failing
    writer.put(2, _ok(2))
    writer.drain()
    writer.close(complete=True)
    lines = out.read_bytes().splitlines(keepends=True)
    assert lines == [_error(i) if i == 5 else _ok(i) for i in range(10)]
    assert out.with_name("out.errors.jsonl").read_bytes() == _error(5)
    again = FailedLinesWriter(out, inp)
    assert [index for index, _ in again.input_lines(inp)] == [5]
    again.close(complete=False)


def test_an_unfinished_job_is_refused(tmp_path: Path) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_text("{}\n{}\n")
    out = tmp_path / "out.jsonl"
    writer = OrderedWriter(out, inp)
    writer.put(0, _ok(0))
    writer.close(complete=False)
    with pytest.raises(OutputError, match="--resume first"):
        FailedLinesWriter(out, inp)
