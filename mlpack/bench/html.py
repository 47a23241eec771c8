"""A single self-contained, offline HTML report of a results document (inline CSS and SVG).

Plots: throughput against p99 latency per configuration, latency percentiles against load,
and the server's queue/compute split per measurement; then the full table.
"""

from __future__ import annotations

import webbrowser
from collections import defaultdict
from html import escape
from pathlib import Path
from typing import Any

from .charts import line_chart, stacked_bars
from .report import _load, series_key

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;
 background:#fafafa}
header{height:64px;box-sizing:border-box;overflow:hidden;padding:12px 24px;background:#123;
 color:#fff}
header h1{margin:0;font-size:20px} header p{margin:4px 0 0;font-size:13px;color:#cde}
main{padding:16px 24px}
.plots{display:flex;flex-wrap:wrap;gap:16px;width:1232px}
figure.plot{margin:0;background:#fff;border:1px solid #ddd;width:600px;height:340px}
table{border-collapse:collapse;font-size:12px;margin-top:20px;background:#fff}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right} th{background:#eef}
td:nth-child(2),th:nth-child(2){text-align:left}
.errors{color:#b00}
"""


def _load_value(result: dict[str, Any]) -> float:
    config = result["config"]
    return float(config["rate"] or config["concurrency"])


def _plots(document: dict[str, Any]) -> list[tuple[str, str]]:
    results = document["results"]
    by_series: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for result in results:
        by_series[series_key(result)].append(result)
    open_loop = any(r["config"].get("rate") for r in results)
    load_label = "offered rate (req/s)" if open_loop else "concurrency"

    curve = [
        (name, [(r["client"]["rps"], r["client"]["p99_ms"]) for r in rs])
        for name, rs in by_series.items()
    ]
    plots = [
        (
            "throughput-latency",
            line_chart(
                "Throughput vs p99 latency", curve, "throughput (req/s)", "p99 latency (ms)"
            ),
        )
    ]
    pct_series, dashed, colors = [], [], []
    for index, (name, rs) in enumerate(by_series.items()):
        for key, is_dashed in (("p50_ms", True), ("p99_ms", False)):
            pct_series.append(
                (f"{name} {key[:3]}", [(_load_value(r), r["client"][key]) for r in rs])
            )
            dashed.append(is_dashed)
            colors.append(index)
    loads = {_load_value(r) for r in results}
    log_x = len(loads) > 2 and max(loads) / max(min(loads), 1e-9) >= 8
    plots.append(
        (
            "latency-percentiles",
            line_chart(
                f"Latency percentiles vs {load_label} (p50 dashed)",
                pct_series,
                load_label,
                "latency (ms)",
                log_x=log_x,
                dashed=dashed,
                colors=colors,
                legend=list(by_series),
                ticks_at_values=True,
            ),
        )
    )
    bars = [
        (
            f"{series_key(r)} {_load(r['config'])}",
            [r["server"]["queue_ms"], r["server"]["compute_ms"]] if r.get("server") else [0.0, 0.0],
        )
        for r in results
    ]
    plots.append(
        (
            "queue-compute",
            stacked_bars(
                "Server time per request: queue vs compute (bars numbered as the table)",
                bars,
                ["queue", "compute"],
                "ms",
            ),
        )
    )
    return plots


def _table(document: dict[str, Any]) -> str:
    head = (
        "#",
        "configuration",
        "load",
        "req/s",
        "rows/s",
        "p50",
        "p90",
        "p95",
        "p99",
        "max",
        "queue",
        "compute",
        "batch",
        "server CPU",
        "RSS MiB",
        "errors",
    )
    rows = ["<tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"]
    for number, r in enumerate(document["results"], 1):
        c, s, p = r["client"], r.get("server"), r.get("process")
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(c["error_kinds"].items()))
        cells = [
            str(number),
            escape(series_key(r)),
            escape(_load(r["config"])),
            f"{c['rps']:,.0f}",
            f"{c['rows_per_s']:,.0f}",
            *(f"{c[k]:.2f}" for k in ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms")),
            *(
                (f"{s['queue_ms']:.2f}", f"{s['compute_ms']:.2f}", f"{s['avg_batch']:.1f}")
                if s
                else ("-", "-", "-")
            ),
            f"{p['cpu_cores']:.2f}" if p else "-",
            f"{p['rss_mib_peak']:.0f}" if p else "-",
            f'<span class="errors">{escape(errors)}</span>' if errors else "0",
        ]
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    return "<table>" + "".join(rows) + "</table>"


def render_html(document: dict[str, Any]) -> str:
    title = escape(document.get("title", "mlpack bench"))
    subtitle = escape(
        f"{len(document['results'])} measurements · {document.get('created', '')} · "
        f"mlpack {document.get('mlpack', '')}"
    )
    figures = "".join(
        f'<figure class="plot" id="plot-{name}">{svg}</figure>' for name, svg in _plots(document)
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{title}</h1><p>{subtitle}</p></header>"
        f'<main><section class="plots">{figures}</section>{_table(document)}</main>'
        "</body></html>\n"
    )


def write_html(document: dict[str, Any], path: Path, open_browser: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(document))
    if open_browser:
        webbrowser.open(path.resolve().as_uri())
    return path
