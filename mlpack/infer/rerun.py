"""``--retry-failed``: send again only the lines whose records are errors; replace them in place.

The error sidecar (``OUT.errors.jsonl``) lists the failed lines. Their new records go to a
scratch file in input order; when every one has an answer, the output is rewritten in one
pass (each listed line that still holds an error record takes its new record, every other
line is copied as it is) and replaces the old one atomically, together with a new sidecar.
An interrupted or failed rerun leaves the output exactly as it was.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import orjson

from .output import Checkpoint, OutputError, sidecar_paths
from .reader import iter_lines


def failed_lines(errors_path: Path) -> list[int]:
    """0-based indices of the lines the error sidecar lists, sorted, without duplicates."""
    found: set[int] = set()
    if not errors_path.exists():
        return []
    with open(errors_path, "rb") as file:
        for raw in file:
            try:
                line = orjson.loads(raw).get("line")
            except (orjson.JSONDecodeError, AttributeError):
                continue
            if isinstance(line, int) and line >= 1:
                found.add(line - 1)
    return sorted(found)


def is_error_record(raw: bytes) -> bool:
    """True for a record ``mlpack infer`` wrote for a failed line."""
    if b'"error"' not in raw:
        return False
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return isinstance(record, dict) and "error" in record and "line" in record


class FailedLinesWriter:
    """Collects new records for the failed lines of a finished job; rewrites its output at the end.

    Offers the same surface as ``OrderedWriter`` (``put``, ``drain``, ``close``, ...).
    """

    def __init__(self, output: Path, input_path: Path) -> None:
        self.output = output
        self.errors_path, self.checkpoint_path = sidecar_paths(output)
        checkpoint = Checkpoint.read(self.checkpoint_path)
        if checkpoint is None or not output.exists():
            raise OutputError(f"{output} holds no earlier job to retry (no checkpoint next to it)")
        if checkpoint.input != str(input_path.resolve()):
            raise OutputError(
                f"{output} was written for input {checkpoint.input}, not {input_path}"
            )
        if not checkpoint.complete:
            raise OutputError(
                f"{output} holds an unfinished job ({checkpoint.lines} lines written): "
                "finish it with --resume first, then --retry-failed"
            )
        self.checkpoint = checkpoint
        self.failed = failed_lines(self.errors_path)
        self.start = 0
        self.errors_before = 0
        self._position = 0
        self._pending: dict[int, tuple[bytes, bytes | None]] = {}
        self._scratch_path = output.with_name(output.name + ".retry.tmp")
        # Open for the writer's lifetime; ``close`` closes it.
        self._scratch: IO[bytes] = open(self._scratch_path, "wb")  # noqa: SIM115

    @property
    def lines_buffered(self) -> int:
        return len(self._pending)

    @property
    def lines_to_send(self) -> int | None:
        return len(self.failed)

    def input_lines(self, input_path: Path) -> Iterator[tuple[int, bytes]]:
        """The failed lines of the input, in order."""
        if not self.failed:
            return
        last = self.failed[-1]
        for index, raw in iter_lines(input_path):
            if index > last:
                return
            position = bisect.bisect_left(self.failed, index)
            if position < len(self.failed) and self.failed[position] == index:
                yield index, raw

    def put(self, index: int, record: bytes, error: bytes | None = None) -> None:
        self._pending[index] = (record, error)

    def drain(self) -> int:
        written = 0
        while self._position < len(self.failed) and self.failed[self._position] in self._pending:
            record, _ = self._pending.pop(self.failed[self._position])
            self._scratch.write(record)
            self._position += 1
            written += 1
        return written

    def close(self, complete: bool = False) -> None:
        self.drain()
        self._scratch.close()
        try:
            if complete and self._position == len(self.failed):
                self._merge()
        finally:
            self._scratch_path.unlink(missing_ok=True)

    def _merge(self) -> None:
        """Rewrite the output with the new records and the sidecar with what still fails."""
        output_tmp = self.output.with_name(self.output.name + ".tmp")
        errors_tmp = self.errors_path.with_name(self.errors_path.name + ".tmp")
        failed = iter(self.failed)
        target = next(failed, None)
        lines = output_bytes = errors_bytes = 0
        with (
            open(self.output, "rb") as old,
            open(self._scratch_path, "rb") as new,
            open(output_tmp, "wb") as out,
            open(errors_tmp, "wb") as errors,
        ):
            for index, raw in enumerate(old):
                if index == target:
                    replacement = new.readline()
                    target = next(failed, None)
                    # A line the sidecar lists but that is no error record (a rerun stopped
                    # between the two renames) keeps its answer.
                    if is_error_record(raw):
                        raw = replacement
                if not raw.endswith(b"\n"):
                    raw += b"\n"
                if is_error_record(raw):
                    errors.write(raw)
                    errors_bytes += len(raw)
                out.write(raw)
                output_bytes += len(raw)
                lines += 1
            for handle in (out, errors):
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(output_tmp, self.output)
        os.replace(errors_tmp, self.errors_path)
        self.checkpoint.lines = lines
        self.checkpoint.output_bytes = output_bytes
        self.checkpoint.errors_bytes = errors_bytes
        self.checkpoint.complete = True
        self.checkpoint.write(self.checkpoint_path)
