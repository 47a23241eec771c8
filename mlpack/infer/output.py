"""Ordered, append-only output with a checkpoint sidecar, and resuming from it.

Records arrive in any order and are written strictly in input order, each one flushed to
the OS as soon as every earlier line is written, so killing the process loses nothing
already written. The checkpoint (``OUT.checkpoint.json``) records how many lines and bytes
are durably written (fsync'd); it is a hint: on ``--resume`` the output file itself is the
truth, any partial trailing line is cut off, and the job continues at the next line.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from ..errors import OutputError as OutputError  # defined in the error tree; re-exported
from .reader import iter_lines


@dataclass
class Checkpoint:
    """What the sidecar file holds."""

    input: str
    lines: int = 0
    output_bytes: int = 0
    errors_bytes: int = 0
    complete: bool = False
    version: int = 1

    @classmethod
    def read(cls, path: Path) -> Checkpoint | None:
        try:
            data = json.loads(path.read_text())
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as error:
            raise OutputError(
                f"checkpoint {path} is unreadable ({error}); delete it to start again"
            ) from None

    def write(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w") as file:
            json.dump(asdict(self), file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)


def sidecar_paths(output: Path) -> tuple[Path, Path]:
    """``out.jsonl`` → (``out.errors.jsonl``, ``out.checkpoint.json``)."""
    stem = output.name[: -len(".jsonl")] if output.name.endswith(".jsonl") else output.name
    return output.with_name(stem + ".errors.jsonl"), output.with_name(stem + ".checkpoint.json")


def _complete_lines(path: Path, start_bytes: int, start_lines: int) -> tuple[int, int]:
    """(lines, bytes) of ``path`` up to its last newline, scanning from a known-good point."""
    size = path.stat().st_size
    if start_bytes > size:  # checkpoint ahead of the file: distrust it, scan everything
        start_bytes, start_lines = 0, 0
    lines, end = start_lines, start_bytes
    with open(path, "rb") as file:
        file.seek(start_bytes)
        offset = start_bytes
        while chunk := file.read(1 << 20):
            count = chunk.count(b"\n")
            if count:
                lines += count
                end = offset + chunk.rindex(b"\n") + 1
            offset += len(chunk)
    return lines, end


def _keep_errors_up_to(path: Path, lines: int) -> tuple[int, int]:
    """Drop error records of lines after ``lines`` (and a partial last record).

    Returns the file's new size and how many error records it keeps.
    """
    if not path.exists():
        return 0, 0
    kept = []
    with open(path, "rb") as file:
        for raw in file:
            if not raw.endswith(b"\n"):
                break
            try:
                line_number = orjson.loads(raw).get("line", 0)
            except (orjson.JSONDecodeError, AttributeError):
                continue
            if line_number <= lines:
                kept.append(raw)
    data = b"".join(kept)
    path.write_bytes(data)
    return len(data), len(kept)


class OrderedWriter:
    """Writes records in input order; resumes a previous run when asked.

    Parameters:
        output: the responses file (one line per input line).
        input_path: recorded in the checkpoint, checked on resume.
        resume: continue a previous run instead of starting afresh.
        overwrite: start afresh even over an unfinished run.
        checkpoint_interval: seconds between fsync + checkpoint writes.
    """

    def __init__(
        self,
        output: Path,
        input_path: Path,
        *,
        resume: bool = False,
        overwrite: bool = False,
        checkpoint_interval: float = 1.0,
    ) -> None:
        self.output = output
        self.errors_path, self.checkpoint_path = sidecar_paths(output)
        self.checkpoint_interval = checkpoint_interval
        self._pending: dict[int, tuple[bytes, bytes | None]] = {}
        self._last_checkpoint = 0.0
        self.errors_before = 0  # error records kept from an earlier run (on resume)
        self.checkpoint = self._prepare(str(input_path.resolve()), resume, overwrite)
        self.start = self.checkpoint.lines
        self.next_index = self.start
        # Held open for the job's life and closed by close(): not a `with` block.
        self._out = open(output, "ab")  # noqa: SIM115
        self._errors = open(self.errors_path, "ab")  # noqa: SIM115

    def _prepare(self, input_path: str, resume: bool, overwrite: bool) -> Checkpoint:
        previous = Checkpoint.read(self.checkpoint_path)
        if not resume:
            if (
                previous is not None
                and not previous.complete
                and not overwrite
                and self.output.exists()
            ):
                raise OutputError(
                    f"{self.output} holds an unfinished job ({previous.lines} lines written); "
                    "pass --resume to continue it or --overwrite to start again"
                )
            self.output.parent.mkdir(parents=True, exist_ok=True)
            self.output.write_bytes(b"")
            self.errors_path.write_bytes(b"")
            checkpoint = Checkpoint(input=input_path)
            checkpoint.write(self.checkpoint_path)
            return checkpoint
        if previous is not None and previous.input != input_path:
            raise OutputError(
                f"{self.output} was written for input {previous.input}, not {input_path}"
            )
        if not self.output.exists():
            self.output.parent.mkdir(parents=True, exist_ok=True)
            self.output.write_bytes(b"")
            previous = None
        base = previous or Checkpoint(input=input_path)
        lines, size = _complete_lines(self.output, base.output_bytes, base.lines)
        with open(self.output, "r+b") as file:
            file.truncate(size)
        errors_bytes, self.errors_before = _keep_errors_up_to(self.errors_path, lines)
        checkpoint = Checkpoint(
            input=input_path, lines=lines, output_bytes=size, errors_bytes=errors_bytes
        )
        checkpoint.write(self.checkpoint_path)
        return checkpoint

    @property
    def lines_to_send(self) -> int | None:
        """How many lines this run sends (None: the rest of the input, counted elsewhere)."""
        return None

    def input_lines(self, input_path: Path) -> Iterator[tuple[int, bytes]]:
        """The input lines this run sends: every line after those already written."""
        return iter_lines(input_path, self.start)

    def put(self, index: int, record: bytes, error: bytes | None = None) -> None:
        """Hand over the output record (and error record, if the line failed) of line ``index``."""
        self._pending[index] = (record, error)

    def drain(self) -> int:
        """Write every record whose predecessors are written; return how many were written."""
        written = 0
        pending = self._pending
        while self.next_index in pending:
            record, error = pending.pop(self.next_index)
            if error is not None:
                self._errors.write(error)
                self.checkpoint.errors_bytes += len(error)
            self._out.write(record)
            self.checkpoint.output_bytes += len(record)
            self.next_index += 1
            written += 1
        if written:
            # Errors first: an output line on disk always has its error record on disk.
            self._errors.flush()
            self._out.flush()
            self.checkpoint.lines = self.next_index
            if time.monotonic() - self._last_checkpoint >= self.checkpoint_interval:
                self.sync()
        return written

    def sync(self, complete: bool = False) -> None:
        """fsync the files and record the checkpoint."""
        self._errors.flush()
        self._out.flush()
        os.fsync(self._errors.fileno())
        os.fsync(self._out.fileno())
        self.checkpoint.complete = complete
        self.checkpoint.write(self.checkpoint_path)
        self._last_checkpoint = time.monotonic()

    def close(self, complete: bool = False) -> None:
        self.drain()
        self.sync(complete)
        self._out.close()
        self._errors.close()
