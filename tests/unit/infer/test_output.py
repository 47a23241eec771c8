from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlpack.infer.output import Checkpoint, OrderedWriter, OutputError, sidecar_paths


def test_sidecar_paths() -> None:
    assert sidecar_paths(Path("d/out.jsonl")) == (
        Path("d/out.errors.jsonl"),
        Path("d/out.checkpoint.json"),
    )
    assert sidecar_paths(Path("out.txt"))[1] == Path("out.txt.checkpoint.json")


def test_records_are_written_in_order_only(tmp_path: Path) -> None:
    out, inp = tmp_path / "out.jsonl", tmp_path / "in.jsonl"
    inp.write_text("")
    writer = OrderedWriter(out, inp)
    writer.put(1, b"one\n")
    assert writer.drain() == 0 and out.read_bytes() == b""
    writer.put(0, b"zero\n", b'{"line": 1}\n')
    assert writer.drain() == 2 and out.read_bytes() == b"zero\none\n"
    writer.close(complete=True)
    checkpoint = Checkpoint.read(tmp_path / "out.checkpoint.json")
    assert checkpoint is not None and checkpoint.lines == 2 and checkpoint.complete
    assert (
        checkpoint.output_bytes == 9
        and (tmp_path / "out.errors.jsonl").read_bytes() == b'{"line": 1}\n'
    )


def test_resume_trusts_the_file_and_cuts_partial_lines(tmp_path: Path) -> None:
    out, inp = tmp_path / "out.jsonl", tmp_path / "in.jsonl"
    inp.write_text("")
    OrderedWriter(out, inp).close()
    out.write_bytes(b"a\nb\nc\npart")
    (tmp_path / "out.errors.jsonl").write_bytes(b'{"line": 2}\n{"line": 4}\n{"line": 5')
    Checkpoint(input=str(inp.resolve()), lines=1, output_bytes=2).write(
        tmp_path / "out.checkpoint.json"
    )
    writer = OrderedWriter(out, inp, resume=True)
    assert writer.start == 3 and out.read_bytes() == b"a\nb\nc\n"
    assert (tmp_path / "out.errors.jsonl").read_bytes() == b'{"line": 2}\n'
    writer.put(3, b"d\n")
    writer.close(complete=True)
    assert out.read_bytes() == b"a\nb\nc\nd\n"


def test_unfinished_job_is_protected(tmp_path: Path) -> None:
    out, inp, other = tmp_path / "out.jsonl", tmp_path / "in.jsonl", tmp_path / "other.jsonl"
    inp.write_text("")
    other.write_text("")
    OrderedWriter(out, inp).close(complete=False)
    with pytest.raises(OutputError, match="--resume"):
        OrderedWriter(out, inp)
    with pytest.raises(OutputError, match="was written for input"):
        OrderedWriter(out, other, resume=True)
    OrderedWriter(out, inp, overwrite=True).close(complete=True)
    OrderedWriter(out, inp).close()  # a complete job may be overwritten
    assert json.loads((tmp_path / "out.checkpoint.json").read_text())["lines"] == 0
