"""``mlpack tune``: measure settings on local servers, search for the best under a p99 objective.

Model settings (``max_batch_size``, ``max_batch_time``, ...) change by rewriting the local
copy's ``model-settings.json`` and reloading the model; server settings
(``parallel_workers``) by restarting the local server. Each measurement is one
``mlpack bench`` point (``measure.measure``) at the target concurrency or rate.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BenchError
from .local import (
    SETTINGS_FILE,
    _model_files,
    local_server,
    reload_model,
    split_settings,
    write_model_settings,
)
from .measure import Point, Target, measure
from .processes import ServerProcess
from .search import Config, Measurement, SearchResult, Trial, coordinate_search, grid_size, pareto
from .sweep import RequestSource

DEFAULT_SPACE: dict[str, list[Any]] = {
    "max_batch_size": [1, 2, 4, 8, 16, 32],
    "max_batch_time": [0.0, 0.002, 0.01],
    "parallel_workers": [0, 1, 2],
}


class TuneError(BenchError):
    """Tuning cannot run as asked."""


def parse_duration_ms(text: str) -> float:
    """``25ms``, ``0.5s`` or ``25`` (milliseconds) → milliseconds."""
    value = text.strip().lower()
    try:
        if value.endswith("ms"):
            result = float(value[:-2])
        elif value.endswith("s"):
            result = float(value[:-1]) * 1000
        else:
            result = float(value)
    except ValueError:
        raise TuneError(f"{text!r} is not a duration (e.g. 25ms, 0.5s)") from None
    if not result > 0:
        raise TuneError(f"{text!r}: the latency objective must be positive")
    return result


def parse_space(values: Sequence[str]) -> dict[str, list[Any]]:
    """``NAME=V1,V2`` flags → the search space (replacing the default one when given)."""
    space: dict[str, list[Any]] = {}
    for value in values:
        name, sep, items = value.partition("=")
        if not sep or not name or not items:
            raise TuneError(
                f"--space {value!r}: expected NAME=V1,V2,... (e.g. max_batch_size=1,8,32)"
            )
        try:
            parsed = [json.loads(v) for v in items.split(",") if v.strip()]
        except json.JSONDecodeError:
            raise TuneError(f"--space {value!r}: values must be numbers or true/false") from None
        space[name.strip()] = parsed
    split_settings({name: values[0] for name, values in space.items()})  # names are valid
    return space


@dataclass
class TuneOptions:
    folder: Path
    model: str
    slo_p99_ms: float
    space: dict[str, list[Any]] = field(default_factory=lambda: dict(DEFAULT_SPACE))
    concurrency: int = 16
    rate: float | None = None
    rows: int = 1
    transport: str = "rest"
    duration: float = 3.0
    warmup: float = 0.5
    budget: int | None = None
    source: RequestSource = field(default_factory=RequestSource)


def model_name_in(folder: Path, name: str | None) -> str:
    """The model to tune: ``name``, or the only model below ``folder``."""
    files = _model_files(folder, None)
    names = []
    for path in files:
        try:
            names.append(json.loads(path.read_text()).get("name") or path.parent.name)
        except (OSError, ValueError) as error:
            raise TuneError(f"{path}: cannot read it: {error}") from None
    if name is not None:
        if name not in names:
            raise TuneError(
                f"no model {name!r} below {folder} (found: {', '.join(names) or 'none'})"
            )
        return name
    if len(names) != 1:
        raise TuneError(
            f"{folder} holds {len(names)} models ({', '.join(names) or 'none'}): choose one with -m"
        )
    return names[0]


class _Servers:
    """One local server at a time; restarted only when a server setting changes."""

    def __init__(self, options: TuneOptions) -> None:
        self.options = options
        self.stack = contextlib.AsyncExitStack()
        self.server_key: tuple[tuple[str, Any], ...] | None = None
        self.process: ServerProcess | None = None
        self.model_values: dict[str, Any] = {}

    async def ready_for(self, config: Config) -> ServerProcess:
        server, model_values = split_settings(dict(config))
        key = tuple(sorted(server.items()))
        if self.process is None or key != self.server_key:
            await self.stack.aclose()
            self.stack = contextlib.AsyncExitStack()
            self.process = await self.stack.enter_async_context(
                local_server(self.options.folder, server, model_values, self.options.model)
            )
            self.server_key, self.model_values = key, model_values
        elif model_values != self.model_values:
            write_model_settings(self.process.workdir / "models", self.options.model, model_values)
            await reload_model(self.process.base_url, self.options.model)
            self.model_values = model_values
        return self.process

    async def close(self) -> None:
        await self.stack.aclose()


async def run_tune(options: TuneOptions) -> tuple[SearchResult, int]:
    """Search the space; return the result and the grid size it was searched instead of."""
    size = grid_size(options.space)
    budget = options.budget or max(1, size // 3)
    servers = _Servers(options)
    cache: dict[int, list[dict[str, Any]]] = {}

    async def evaluate(config: Config, rung: int) -> Measurement:
        process = await servers.ready_for(config)
        target = Target(process.base_url, options.model, process.grpc_target, pid=process.proc.pid)
        if options.rows not in cache:
            cache[options.rows] = await options.source.requests(target, options.rows)
        point = Point(
            options.transport,
            options.concurrency,
            options.rows,
            rate=options.rate,
            duration=options.duration * (2 if rung else 1),
            warmup=options.warmup,
            server=dict(config),
        )
        result = await measure(target, point, cache[options.rows])
        client = result["client"]
        return Measurement(client["rows_per_s"], client["p99_ms"], client["errors"], result)

    try:
        start = _current_settings(options)
        found = await coordinate_search(
            options.space,
            evaluate,
            options.slo_p99_ms,
            budget,
            start=start,
            objective="latency" if options.rate else "throughput",
        )
    finally:
        await servers.close()
    return found, size


def _current_settings(options: TuneOptions) -> dict[str, Any]:
    """Where the model stands today (a starting point when it lies in the space)."""
    current: dict[str, Any] = {}
    for path in _model_files(options.folder, options.model)[:1]:
        current.update(json.loads(path.read_text()))
    settings = options.folder / SETTINGS_FILE
    if settings.is_file():
        current.update(json.loads(settings.read_text()))
    return {k: v for k, v in current.items() if k in options.space}


def results_table(found: SearchResult, slo_p99_ms: float) -> str:
    """Markdown: every measured configuration, best first, with Pareto and SLO marks."""
    front = {id(t) for t in pareto(found.trials)}
    lines = [
        "| # | settings | rows/s | p99 ms | errors | meets SLO | Pareto | runs |",
        "|--:|---|--:|--:|--:|:-:|:-:|--:|",
    ]
    for i, trial in enumerate(found.trials, 1):
        settings = ", ".join(f"{k}={v}" for k, v in trial.config)
        lines.append(
            f"| {i} | {settings} | {trial.throughput:,.0f} | {trial.p99_ms:.1f} | {trial.errors} "
            f"| {'yes' if trial.feasible(slo_p99_ms) else 'no'} "
            f"| {'*' if id(trial) in front else ''} "
            f"| {len(trial.measurements)} |"
        )
    return "\n".join(lines) + "\n"


def _keep_around(value: str) -> Callable[[re.Match[str]], str]:
    """A regex replacement that swaps group 2 for ``value``, keeping groups 1 and 3."""
    return lambda match: match.group(1) + value + match.group(3)


def _set_keys(text: str, values: dict[str, Any]) -> str:
    """Set top-level keys of a JSON object's text, keeping the rest of its formatting."""
    data = json.loads(text) if text.strip() else {}
    if not isinstance(data, dict):
        raise TuneError("a settings file must hold a JSON object")
    if not text.strip():
        return json.dumps(values, indent=2) + "\n"
    for key, value in values.items():
        encoded = json.dumps(value)
        pattern = re.compile(
            r'(^\s*"' + re.escape(key) + r'"\s*:\s*)([^,\n{}\[\]]+?)(\s*,?\s*$)', re.M
        )
        if key in data and pattern.search(text):
            text = pattern.sub(_keep_around(encoded), text, count=1)
        elif key in data:  # an unusual layout: rewrite the whole file
            data.update(values)
            return json.dumps(data, indent=2) + "\n"
        else:
            end = text.rstrip().rfind("}")
            body = text[:end].rstrip()
            sep = "," if body.rstrip().endswith(("}", "]", '"')) or body[-1:].isalnum() else ""
            text = f'{body}{sep}\n  "{key}": {encoded}\n' + text[end:]
    if json.loads(text) != {**data, **values}:  # never write something that reads differently
        return json.dumps({**data, **values}, indent=2) + "\n"
    return text


def write_settings(folder: Path, model: str, trial: Trial) -> str:
    """Apply ``trial``'s settings to the real folder; return the unified diff of what changed."""
    server, model_values = split_settings(dict(trial.config))
    diffs = []
    targets: list[tuple[Path, dict[str, Any]]] = []
    if model_values:
        targets += [(path, model_values) for path in _model_files(folder, model)]
    if server:
        targets.append((folder / SETTINGS_FILE, server))
    for path, values in targets:
        before = path.read_text() if path.is_file() else ""
        after = _set_keys(before, values)
        if after != before:
            path.write_text(after)
            diffs.append(
                "".join(
                    difflib.unified_diff(
                        before.splitlines(True), after.splitlines(True), str(path), str(path)
                    )
                )
            )
    return "\n".join(diffs)


def trial_summary(trial: Trial) -> dict[str, Any]:
    return {
        "settings": dict(trial.config),
        "rows_per_s": trial.throughput,
        "p99_ms": trial.p99_ms,
        "errors": trial.errors,
        "runs": len(trial.measurements),
        "server": [m.extra.get("server") for m in trial.measurements],
    }
