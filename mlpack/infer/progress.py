"""Job counters and how they are shown: a rich progress bar on a TTY, log lines otherwise."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO


@dataclass
class JobStats:
    """Counters of one run.

    Lines and rows differ: a line is one request of the input file, and it may carry many
    rows (its first dimension). ``skipped`` lines were written by an earlier run, and
    ``failed_before`` of them are error records.
    """

    total: int | None = None
    skipped: int = 0
    failed_before: int = 0
    ok: int = 0
    failed: int = 0
    rows: int = 0
    retries: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def done(self) -> int:
        return self.ok + self.failed

    @property
    def failed_in_output(self) -> int:
        """Error records in the whole output: this run's and earlier runs'."""
        return self.failed + self.failed_before

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def rate(self) -> float:
        """Lines per second."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def row_rate(self) -> float:
        return self.rows / self.elapsed if self.elapsed > 0 else 0.0

    def summary(self) -> str:
        before = (
            f"; {self.skipped} lines from before ({self.failed_before} failed)"
            if self.skipped
            else ""
        )
        return (
            f"{self.done} lines: {self.ok} ok, {self.failed} failed, {self.retries} retries; "
            f"{self.rows:,} rows{before}; "
            f"{self.rate:,.0f} lines/s, {self.row_rate:,.0f} rows/s over {self.elapsed:.1f}s"
        )


class Reporter(Protocol):
    def tick(self, stats: JobStats) -> None: ...
    def close(self, stats: JobStats) -> None: ...


class LogReporter:
    """A plain line every ``interval`` seconds (for logs and pipes)."""

    def __init__(self, stream: TextIO = sys.stderr, interval: float = 10.0) -> None:
        self.stream = stream
        self.interval = interval
        self._last = time.monotonic()

    def tick(self, stats: JobStats) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        done = stats.skipped + stats.done
        of = f"/{stats.total}" if stats.total is not None else ""
        print(
            f"infer: {done}{of} lines, {stats.failed} failed, {stats.retries} retries, "
            f"{stats.rate:,.0f} lines/s, {stats.row_rate:,.0f} rows/s",
            file=self.stream,
            flush=True,
        )

    def close(self, stats: JobStats) -> None:
        pass


class RichReporter:
    """A live progress bar over lines with lines/s, rows/s, ETA and the error count."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]infer"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]} lines/s"),
            TextColumn("{task.fields[row_rate]} rows/s"),
            TextColumn("[red]{task.fields[failed]} failed"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            transient=False,
        )
        self._task: Any = self._progress.add_task(
            "infer", total=None, rate="0", row_rate="0", failed=0
        )
        self._progress.start()

    def tick(self, stats: JobStats) -> None:
        self._progress.update(
            self._task,
            total=stats.total,
            completed=stats.skipped + stats.done,
            rate=f"{stats.rate:,.0f}",
            row_rate=f"{stats.row_rate:,.0f}",
            failed=stats.failed,
        )

    def close(self, stats: JobStats) -> None:
        self.tick(stats)
        self._progress.stop()


class NullReporter:
    def tick(self, stats: JobStats) -> None:
        pass

    def close(self, stats: JobStats) -> None:
        pass
