"""Streaming: the example's Markov text generator over REST server-sent events, mlpack
(``parallel_workers`` 0 and 2) against MLServer 1.7.1 (``parallel_workers`` 0 and gzip off,
as MLServer requires for streaming), side by side in one run.

Every server streams the same model (``examples/streaming``: ``markov.py`` and its corpus;
MLServer through ``benchmarks/mlserver_markov.py``) on ``POST /v2/models/markov/infer_stream``
(MLServer's ``generate_stream`` is an alias of ``infer_stream`` taking the same inference
request, not the generate extension's ``text_input`` JSON, so ``infer_stream`` is the route
both servers share). Each stream asks for ``--tokens`` tokens. For each concurrency, each
server runs for ``--duration`` seconds, in an order that rotates every repeat; medians of
the repeats are reported with mlpack/MLServer ratios: time to first chunk p50/p99 (ms) and
chunks/s. Writes JSON to benchmarks/results/streaming.json.

Usage: ``python -m benchmarks.streaming [-d 8] [-r 3] [-c 1 32] [--tokens 32]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import loadgen, servers
from benchmarks.iris_rest import _git_commit, server_facts
from benchmarks.mlserver_env import ensure_mlserver
from benchmarks.sse_load import run_streams

EXAMPLE = servers.REPO_ROOT / "examples" / "streaming"
TWIN = Path(__file__).resolve().parent / "mlserver_markov.py"
RESULTS = Path(__file__).resolve().parent / "results" / "streaming.json"
STREAM_PATH = "/v2/models/markov/infer_stream"
# name → (server, parallel_workers)
CONFIGS = {"mlpack-w0": ("mlpack", 0), "mlpack-w2": ("mlpack", 2), "mlserver-w0": ("mlserver", 0)}
BASELINE = "mlserver-w0"
_METRICS = ("ttfc_p50_ms", "ttfc_p99_ms", "chunks_per_s", "streams_per_s", "stream_p50_ms")
_METRICS_CPU = (*_METRICS, "loadgen_cpu", "server_cpu")


def request_body(tokens: int) -> bytes:
    """The inference request every stream sends: a prompt and ``tokens`` tokens to make."""
    request = {
        "inputs": [
            {"name": "text_input", "shape": [1], "datatype": "BYTES", "data": ["the keeper"]}
        ],
        "parameters": {"max_tokens": tokens, "seed": 1},
    }
    return json.dumps(request, separators=(",", ":")).encode()


def write_repositories(root: Path) -> dict[str, Path]:
    """``root/<server>/markov``: the example as it is (mlpack) and with MLServer's twin."""
    repositories = {}
    for server in ("mlpack", "mlserver"):
        folder = root / server / "markov"
        shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__", "*.md"))
        if server == "mlserver":
            shutil.copyfile(TWIN, folder / "models.py")
        repositories[server] = folder.parent
    return repositories


def _measure(
    server: servers.ServerProcess, body: bytes, tokens: int, concurrency: int, duration: float
) -> dict[str, Any]:
    cpu0 = servers.tree_cpu_seconds(server.proc.pid)
    t0 = time.monotonic()
    result = asyncio.run(
        run_streams(server.base_url + STREAM_PATH, body, tokens, concurrency, duration)
    )
    row = result.to_dict()
    row["server_cpu"] = (servers.tree_cpu_seconds(server.proc.pid) - cpu0) / (time.monotonic() - t0)
    return row


def _median(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {m: statistics.median(r[m] for r in rows) for m in _METRICS_CPU}
    out["errors"] = sum(r["errors"] for r in rows)
    out["streams"] = sum(r["streams"] for r in rows)
    samples = [s for r in rows for s in r["error_samples"]]
    if samples:
        out["error_samples"] = samples[:5]
    return out


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def render_table(report: dict[str, Any]) -> str:
    """Medians per server and each mlpack configuration's ratio to MLServer."""
    names = list(report["results"])
    others = [n for n in names if n != BASELINE]
    head = f"{'':26}" + "".join(f"{n:>13}" for n in names)
    if BASELINE in names:
        head += "".join(f"{n + '/ML':>14}" for n in others)
    lines = [head]
    specs = {
        "ttfc_p50_ms": ("TTFC p50 (ms)", ".2f"),
        "ttfc_p99_ms": ("TTFC p99 (ms)", ".2f"),
        "chunks_per_s": ("chunks/s", ",.0f"),
        "streams_per_s": ("streams/s", ",.1f"),
        "server_cpu": ("server CPU (cores)", ".2f"),
        "loadgen_cpu": ("loadgen CPU", ".0%"),
        "errors": ("errors", "d"),
    }
    servers_ = report["servers"]
    lines.append(
        f"{'start time (s)':26}" + "".join(f"{servers_[n]['start_s']:>13.2f}" for n in names)
    )
    lines.append(
        f"{'idle RSS (MiB)':26}" + "".join(f"{servers_[n]['idle_rss_mib']:>13.0f}" for n in names)
    )
    for c in report["concurrency"]:
        key = f"c{c}"
        for metric, (label, spec) in specs.items():
            values = [report["results"][n][key][metric] for n in names]
            line = f"{f'c={c} {label}':26}" + "".join(f"{format(v, spec):>13}" for v in values)
            ratios = report["ratios"].get(key, {})
            if metric in ("ttfc_p50_ms", "ttfc_p99_ms", "chunks_per_s") and ratios:
                for n in others:
                    value = ratios[n].get(metric)
                    line += f"{'-' if value is None else format(value, '.2f'):>14}"
            lines.append(line)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    names = [n for n in CONFIGS if args.only is None or n in args.only]
    body = request_body(args.tokens)
    started: dict[str, servers.ServerProcess] = {}
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {n: {} for n in names}
    env = {"OPENBLAS_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory(prefix="bench-streaming-") as tmp:
        repositories = write_repositories(Path(tmp))
        try:
            for name in names:  # one at a time: start-ups do not compete for the CPU
                kind, workers = CONFIGS[name]
                if kind == "mlserver":
                    started[name] = servers.start_mlserver(
                        ensure_mlserver(),
                        repositories[kind],
                        parallel_workers=workers,
                        extra_settings={"gzip_enabled": False},
                    )
                else:
                    started[name] = servers.start_mlpack(
                        repositories[kind], parallel_workers=workers, env=env
                    )
                server = started[name]
                print(
                    f"{name}: ready in {server.start_s:.2f} s, idle RSS "
                    f"{server.idle_rss_mib:.0f} MiB",
                    flush=True,
                )
            for name in names:
                if args.warmup > 0:
                    w = _measure(
                        started[name], body, args.tokens, max(args.concurrency), args.warmup
                    )
                    print(
                        f"{name}: warm-up {w['chunks_per_s']:,.0f} chunks/s, "
                        f"{w['errors']} errors {w['error_samples'][:1]}",
                        flush=True,
                    )
            for rep in range(args.repeats):
                order = names[rep % len(names) :] + names[: rep % len(names)]
                for c in args.concurrency:
                    for name in order:
                        row = _measure(started[name], body, args.tokens, c, args.duration)
                        raw[name].setdefault(f"c{c}", []).append(row)
                        print(
                            f"[{rep + 1}/{args.repeats}] {name:11} c={c:<3}"
                            f" TTFC p50 {row['ttfc_p50_ms']:.2f} ms p99 {row['ttfc_p99_ms']:.2f} ms"
                            f"  {row['chunks_per_s']:>8,.0f} chunks/s"
                            f"  server {row['server_cpu']:.2f} cores"
                            f"  loadgen {row['loadgen_cpu']:.0%}  err {row['errors']}",
                            flush=True,
                        )
        finally:
            for server in started.values():
                server.stop()
    return report(args, names, started, raw)


def report(
    args: argparse.Namespace,
    names: list[str],
    started: dict[str, servers.ServerProcess],
    raw: dict[str, dict[str, list[dict[str, Any]]]],
) -> dict[str, Any]:
    """The JSON document: medians per configuration, ratios of each mlpack one to MLServer."""
    results = {n: {k: _median(v) for k, v in raw[n].items()} for n in names}
    ratios: dict[str, Any] = {}
    if BASELINE in names:
        for c in args.concurrency:
            key = f"c{c}"
            base = results[BASELINE][key]
            ratios[key] = {
                n: {m: _ratio(results[n][key][m], base[m]) for m in _METRICS}
                for n in names
                if n != BASELINE
            }
    return {
        "scenario": "streaming",
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_at_end": os.getloadavg(),
        },
        "settings": {
            "duration_s": args.duration,
            "repeats": args.repeats,
            "warmup_s": args.warmup,
            "tokens_per_stream": args.tokens,
            "route": STREAM_PATH,
            "configs": {
                n: {"server": CONFIGS[n][0], "parallel_workers": CONFIGS[n][1]} for n in names
            },
        },
        "concurrency": args.concurrency,
        "servers": server_facts(started),
        "results": results,
        "ratios": ratios,
        "runs": raw,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.streaming", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--only", nargs="+", choices=list(CONFIGS), help="configurations to run")
    parser.add_argument("-d", "--duration", type=float, default=8.0, help="seconds per run")
    parser.add_argument("-r", "--repeats", type=int, default=3, help="repeats; medians reported")
    parser.add_argument("-c", "--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("-w", "--warmup", type=float, default=2.0, help="warm-up seconds each")
    parser.add_argument("--tokens", type=int, default=32, help="tokens per stream (default 32)")
    parser.add_argument("-o", "--output", type=Path, default=RESULTS, help="JSON output")
    args = parser.parse_args(argv)
    loadgen.install_uvloop()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        document = run(args)
    except KeyboardInterrupt:
        print("interrupted: servers stopped", file=sys.stderr)
        return 130
    print()
    print(render_table(document))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    return (
        0 if all(r["errors"] == 0 for v in document["results"].values() for r in v.values()) else 1
    )


if __name__ == "__main__":
    sys.exit(main())
