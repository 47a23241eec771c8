"""The live terminal view of a benchmark run (``rich``): finished points and the running one."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .loadgen import LoadProgress
from .report import _load, series_key


class LiveView:
    """A table of finished measurements plus a status line for the one running."""

    def __init__(self, console: Console | None = None, enabled: bool = True) -> None:
        self.console = console or Console(stderr=True)
        self.enabled = enabled and self.console.is_terminal
        self.results: list[dict[str, Any]] = []
        self.label = ""
        self.progress: LoadProgress | None = None
        self.total = 0
        self._live: Live | None = None

    def __enter__(self) -> LiveView:
        if self.enabled:
            self._live = Live(
                get_renderable=self._render,
                console=self.console,
                refresh_per_second=4,
                transient=False,
            )
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self.progress = None
            self._live.refresh()
            self._live.__exit__(*exc)

    def start(self, label: str, progress: LoadProgress, total: int = 0) -> None:
        self.label, self.progress, self.total = label, progress, total

    def finish(self, result: dict[str, Any]) -> None:
        self.results.append(result)
        self.progress = None
        if not self.enabled:
            c = result["client"]
            line = (
                f"{series_key(result)} {_load(result['config'])}: {c['rps']:,.0f} req/s "
                f"p50 {c['p50_ms']:.2f} ms p99 {c['p99_ms']:.2f} ms errors {c['errors']}"
            )
            self.console.print(line, markup=False)

    def _render(self) -> Group:
        table = Table(title="mlpack bench", expand=False)
        for column in (
            "configuration",
            "load",
            "req/s",
            "rows/s",
            "p50 ms",
            "p99 ms",
            "queue ms",
            "compute ms",
            "batch",
            "errors",
        ):
            table.add_column(column, justify="left" if column == "configuration" else "right")
        for r in self.results:
            c, s = r["client"], r.get("server")
            table.add_row(
                escape(series_key(r)),
                _load(r["config"]),
                f"{c['rps']:,.0f}",
                f"{c['rows_per_s']:,.0f}",
                f"{c['p50_ms']:.2f}",
                f"{c['p99_ms']:.2f}",
                f"{s['queue_ms']:.2f}" if s else "-",
                f"{s['compute_ms']:.2f}" if s else "-",
                f"{s['avg_batch']:.1f}" if s else "-",
                str(c["errors"]),
            )
        parts: list[Any] = [table]
        progress = self.progress
        if progress is not None and progress.phase != "idle":
            elapsed = max(time.perf_counter() - progress.started_at, 1e-9)
            parts.append(
                Text(
                    f"▶ {escape(self.label)}  {progress.phase}: {progress.completed} done, "
                    f"{progress.errors} errors, {progress.completed / elapsed:,.0f} req/s",
                    style="bold cyan",
                )
            )
        return Group(*parts)
