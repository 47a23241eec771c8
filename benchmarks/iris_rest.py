"""Iris over REST: mlpack against MLServer 1.7.1, side by side in one run.

Starts both servers on free loopback ports, warms them up, then for each concurrency runs each
server for `--duration` seconds, alternating servers (and their order every repeat) so machine
noise hits both, `--repeats` times. Reports medians and mlpack/MLServer ratios, plus start time
and idle memory; writes JSON to benchmarks/results/iris_rest.json.

Usage: ``python -m benchmarks.iris_rest [--only mlserver|mlpack] [-d 10] [-r 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import loadgen, models, servers
from benchmarks.mlserver_env import ensure_mlserver

SERVERS = ("mlpack", "mlserver")
RESULTS = Path(__file__).resolve().parent / "results" / "iris_rest.json"
INFER_PATH = f"/v2/models/{models.IRIS_NAME}/infer"
_METRICS = ("rps", "p50_ms", "p90_ms", "p99_ms", "loadgen_cpu", "server_cpu")


def _measure(
    server: servers.ServerProcess, body: bytes, concurrency: int, duration: float
) -> dict[str, Any]:
    driver = loadgen.HttpDriver.from_url(server.base_url + INFER_PATH)
    cpu0 = servers.tree_cpu_seconds(server.proc.pid)
    t0 = time.monotonic()
    result = asyncio.run(
        loadgen.run_load(driver, [body], concurrency=concurrency, duration=duration)
    )
    wall = time.monotonic() - t0
    row = result.to_dict()
    # Server CPU in cores (1.0 = one core busy): shows whether the server is the bottleneck.
    row["server_cpu"] = (servers.tree_cpu_seconds(server.proc.pid) - cpu0) / wall
    return row


def _median_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {m: statistics.median(r[m] for r in rows) for m in _METRICS}
    out["errors"] = sum(r["errors"] for r in rows)
    out["runs"] = len(rows)
    samples = [s for r in rows for s in r["error_samples"]]
    if samples:
        out["error_samples"] = samples[: loadgen.MAX_ERROR_SAMPLES]
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=servers.REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render_table(report: dict[str, Any]) -> str:
    """A plain-text table of the medians and ratios in `report`."""
    names = [n for n in SERVERS if n in report["servers"]]
    lines = []
    head = (
        f"{'':24}"
        + "".join(f"{n:>14}" for n in names)
        + (f"{'ratio':>10}" if len(names) == 2 else "")
    )
    lines.append(head)

    def row(label: str, values: list[float | None], spec: str, ratio: float | None) -> None:
        line = f"{label:24}" + "".join(f"{_fmt(v, spec):>14}" for v in values)
        if len(names) == 2:
            line += f"{_fmt(ratio, '.2f'):>10}"
        lines.append(line)

    s = report["servers"]
    row("start time (s)", [s[n]["start_s"] for n in names], ".2f", report["ratios"].get("start_s"))
    row(
        "idle RSS (MiB)",
        [s[n]["idle_rss_mib"] for n in names],
        ".0f",
        report["ratios"].get("idle_rss_mib"),
    )
    row(
        "idle PSS (MiB)",
        [s[n]["idle_pss_mib"] for n in names],
        ".0f",
        report["ratios"].get("idle_pss_mib"),
    )
    for c in report["concurrency"]:
        key = f"c{c}"
        med = {n: report["results"][n][key] for n in names}
        r = report["ratios"].get(key, {})
        row(f"c={c} req/s", [med[n]["rps"] for n in names], ",.0f", r.get("rps"))
        row(f"c={c} p50 (ms)", [med[n]["p50_ms"] for n in names], ".2f", r.get("p50_ms"))
        row(f"c={c} p90 (ms)", [med[n]["p90_ms"] for n in names], ".2f", r.get("p90_ms"))
        row(f"c={c} p99 (ms)", [med[n]["p99_ms"] for n in names], ".2f", r.get("p99_ms"))
        row(f"c={c} server CPU (cores)", [med[n]["server_cpu"] for n in names], ".2f", None)
        row(f"c={c} loadgen CPU", [med[n]["loadgen_cpu"] for n in names], ".1%", None)
        row(f"c={c} errors", [med[n]["errors"] for n in names], "d", None)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    names = [n for n in SERVERS if args.only in (None, n)]
    body = models.iris_request_body()
    started: dict[str, servers.ServerProcess] = {}
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {n: {} for n in names}
    with tempfile.TemporaryDirectory(prefix="bench-iris-") as tmp:
        repos = models.write_iris_folders(Path(tmp))
        mlserver_exe = ensure_mlserver() if "mlserver" in names else None
        try:
            # Start one at a time so start-up times don't compete for the CPU.
            for name in names:
                if name == "mlserver":
                    assert mlserver_exe is not None
                    server = servers.start_mlserver(
                        mlserver_exe, repos[name], parallel_workers=args.mlserver_workers
                    )
                else:
                    server = servers.start_mlpack(repos[name], parallel_workers=args.mlpack_workers)
                started[name] = server
                print(
                    f"{name}: ready in {server.start_s:.2f} s,"
                    f" idle RSS {server.idle_rss_mib:.0f} MiB"
                    f" (PSS {server.idle_pss_mib:.0f} MiB)",
                    flush=True,
                )
            for name in names:
                if args.warmup > 0:
                    w = _measure(started[name], body, max(args.concurrency), args.warmup)
                    print(
                        f"{name}: warm-up {w['rps']:,.0f} req/s, {w['errors']} errors", flush=True
                    )
            for rep in range(args.repeats):
                order = names if rep % 2 == 0 else names[::-1]
                for c in args.concurrency:
                    for name in order:
                        row = _measure(started[name], body, c, args.duration)
                        raw[name].setdefault(f"c{c}", []).append(row)
                        print(
                            f"[{rep + 1}/{args.repeats}] {name:8} c={c:<3}"
                            f" {row['rps']:>8,.0f} req/s"
                            f"  p50 {row['p50_ms']:.2f} ms  p99 {row['p99_ms']:.2f} ms"
                            f"  server {row['server_cpu']:.2f} cores"
                            f"  loadgen {row['loadgen_cpu']:.1%}  err {row['errors']}",
                            flush=True,
                        )
        finally:
            for server in started.values():
                server.stop()

    return report("iris_rest", args, names, started, raw)


def server_facts(started: dict[str, servers.ServerProcess]) -> dict[str, dict[str, float]]:
    """Start time and idle memory of each started server (the run's facts in every report)."""
    return {
        n: {"start_s": s.start_s, "idle_rss_mib": s.idle_rss_mib, "idle_pss_mib": s.idle_pss_mib}
        for n, s in started.items()
    }


def report(
    scenario: str,
    args: argparse.Namespace,
    names: list[str],
    started: dict[str, servers.ServerProcess],
    raw: dict[str, dict[str, list[dict[str, Any]]]],
) -> dict[str, Any]:
    """The JSON document of a side-by-side run: medians per server, mlpack/MLServer ratios."""
    results = {n: {k: _median_rows(v) for k, v in raw[n].items()} for n in names}
    ratios: dict[str, Any] = {}
    if len(names) == 2:
        a, b = started["mlpack"], started["mlserver"]
        ratios = {
            m: _ratio(getattr(a, m), getattr(b, m))
            for m in ("start_s", "idle_rss_mib", "idle_pss_mib")
        }
        for c in args.concurrency:
            k = f"c{c}"
            ratios[k] = {
                m: _ratio(results["mlpack"][k][m], results["mlserver"][k][m])
                for m in ("rps", "p50_ms", "p90_ms", "p99_ms")
            }
    return {
        "scenario": scenario,
        "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017
        "commit": _git_commit(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": {
            "duration_s": args.duration,
            "repeats": args.repeats,
            "warmup_s": args.warmup,
            "mlpack_workers": args.mlpack_workers,
            "mlserver_workers": args.mlserver_workers,
        },
        "concurrency": args.concurrency,
        "servers": server_facts(started),
        "results": results,
        "ratios": ratios,
        "runs": raw,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.iris_rest", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--only", choices=SERVERS, help="benchmark one server only")
    parser.add_argument(
        "-d", "--duration", type=float, default=10.0, help="seconds per run (default 10)"
    )
    parser.add_argument(
        "-r", "--repeats", type=int, default=3, help="repeats (default 3); medians reported"
    )
    parser.add_argument("-c", "--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument(
        "-w", "--warmup", type=float, default=3.0, help="warm-up seconds per server"
    )
    parser.add_argument(
        "--mlpack-workers", type=int, help="parallel_workers for mlpack (default: its own)"
    )
    parser.add_argument(
        "--mlserver-workers", type=int, help="parallel_workers for MLServer (default: its own)"
    )
    parser.add_argument(
        "-o", "--output", type=Path, default=RESULTS, help=f"JSON output (default {RESULTS})"
    )
    parser.add_argument(
        "--no-uvloop", action="store_true", help="load generator on the default asyncio loop"
    )
    args = parser.parse_args(argv)

    if not args.no_uvloop:
        loadgen.install_uvloop()
    # SIGINT may arrive ignored (background job of a script); SIGTERM becomes Ctrl-C too, so the
    # finally blocks stop every server.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        report = run(args)
    except KeyboardInterrupt:
        print("interrupted: servers stopped", file=sys.stderr)
        return 130
    print()
    print(render_table(report))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    return (
        0
        if all(r["errors"] == 0 for res in report["results"].values() for r in res.values())
        else 1
    )


if __name__ == "__main__":
    sys.exit(main())
