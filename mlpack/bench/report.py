"""Benchmark results as documents: JSON (machine), Markdown (for PRs) and ratio comparisons.

A results document is ``{"kind": "mlpack-bench", "version": 1, "created", "title",
"results": [...]}`` where each result is what ``measure.measure`` returns.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import BenchError

KIND = "mlpack-bench"
VERSION = 1


class ReportError(BenchError):
    """A results file cannot be read or compared."""


def make_document(results: Sequence[dict[str, Any]], title: str, **extra: Any) -> dict[str, Any]:
    from .._version import __version__

    return {
        "kind": KIND,
        "version": VERSION,
        "title": title,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "mlpack": __version__,
        "host": {"python": platform.python_version(), "machine": platform.machine()},
        **extra,
        "results": list(results),
    }


def write_json(document: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def read_json(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except OSError as error:
        raise ReportError(f"cannot read {path}: {error.strerror or error}") from None
    except json.JSONDecodeError as error:
        raise ReportError(f"{path} is not JSON: {error.msg}") from None
    if not isinstance(document, dict) or document.get("kind") != KIND:
        raise ReportError(f"{path} is not an mlpack bench results file")
    return document


def server_label(server: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(server.items())) or "as running"


def series_key(result: dict[str, Any]) -> str:
    """A configuration = everything but the load level (concurrency or rate)."""
    config = result["config"]
    key = f"{config['transport']} rows={config['rows']}"
    if config.get("server"):
        key += f" [{server_label(config['server'])}]"
    return key


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def _load(config: dict[str, Any]) -> str:
    return f"{config['rate']:g}/s" if config.get("rate") else f"c={config['concurrency']}"


def markdown_table(document: dict[str, Any]) -> str:
    """One row per measurement: load, throughput, latency percentiles, server split, errors."""
    lines = [
        f"### {document.get('title', 'mlpack bench')}",
        "",
        "| configuration | load | req/s | rows/s | p50 ms | p90 ms | p95 ms | p99 ms | max ms "
        "| queue ms | compute ms | batch | errors |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for result in document["results"]:
        client, server = result["client"], result.get("server")
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(client["error_kinds"].items())) or "0"
        split = (
            [_ms(server["queue_ms"]), _ms(server["compute_ms"]), f"{server['avg_batch']:.1f}"]
            if server
            else ["-", "-", "-"]
        )
        cells = [
            series_key(result),
            _load(result["config"]),
            f"{client['rps']:,.0f}",
            f"{client['rows_per_s']:,.0f}",
            *(_ms(client[k]) for k in ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms")),
            *split,
            errors,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _index(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{series_key(r)} {_load(r['config'])}": r for r in document["results"]}


def compare(a: dict[str, Any], b: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """Ratios b/a for the measurements both documents hold (matched by configuration and load)."""
    left, right = _index(a), _index(b)
    common = [key for key in left if key in right]
    if not common:
        raise ReportError("the two results files share no configuration (transport, rows, load)")
    rows = []
    lines = [
        "| configuration | rps a | rps b | rps b/a | p50 b/a | p99 b/a |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for key in common:
        ca, cb = left[key]["client"], right[key]["client"]
        ratio = {
            "key": key,
            "rps_a": ca["rps"],
            "rps_b": cb["rps"],
            "rps": _ratio(cb["rps"], ca["rps"]),
            "p50": _ratio(cb["p50_ms"], ca["p50_ms"]),
            "p99": _ratio(cb["p99_ms"], ca["p99_ms"]),
        }
        rows.append(ratio)
        lines.append(
            f"| {key} | {ca['rps']:,.0f} | {cb['rps']:,.0f} | {_fmt(ratio['rps'])} "
            f"| {_fmt(ratio['p50'])} | {_fmt(ratio['p99'])} |"
        )
    return "\n".join(lines) + "\n", rows


def _ratio(b: float, a: float) -> float | None:
    return b / a if a else None


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"
