"""Tracing overhead: iris over REST, main's code vs this checkout with tracing off and on.

Three mlpack servers (``before``: a checkout of another revision, default ``main``;
``off``: this checkout; ``on``: this checkout exporting every trace, ratio 1.0, over OTLP
gRPC to a real receiver in this process) run one at a time in alternating order, so
machine noise hits all three. Reports median req/s and latencies per variant and the
ratios to ``before``.

Usage: ``python -m benchmarks.tracing_overhead [-d 10] [-r 3] [-c 32] [--before-rev main]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import loadgen, models, servers

INFER_PATH = f"/v2/models/{models.IRIS_NAME}/infer"
RESULTS = Path(__file__).resolve().parent / "results" / "tracing_overhead.json"
VARIANTS = ("before", "off", "on")


def _export(revision: str, target: Path) -> Path:
    """``revision`` of this repository as plain files in ``target``."""
    archive = subprocess.run(
        ["git", "archive", revision], cwd=servers.REPO_ROOT, capture_output=True, check=True
    ).stdout
    target.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def _measure(server: servers.ServerProcess, body: bytes, concurrency: int, duration: float) -> Any:
    driver = loadgen.HttpDriver.from_url(server.base_url + INFER_PATH)
    result = asyncio.run(
        loadgen.run_load(driver, [body], concurrency=concurrency, duration=duration)
    )
    return result.to_dict()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tracing_overhead")
    parser.add_argument("-d", "--duration", type=float, default=10.0)
    parser.add_argument("-r", "--repeats", type=int, default=3)
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    parser.add_argument("--before-rev", default="main")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--ratio", type=float, default=1.0, help="sampling ratio when on")
    parser.add_argument("-o", "--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    loadgen.install_uvloop()
    from tests.helpers.otlp import grpc_receiver

    body = models.iris_request_body()
    variants = tuple(v for v in VARIANTS if v in args.variants)
    rows: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    receiver = grpc_receiver()
    endpoint, received = next(receiver)
    with tempfile.TemporaryDirectory(prefix="bench-tracing-") as tmp:
        before_root = _export(args.before_rev, Path(tmp) / "before")
        repo = models.write_iris_folders(Path(tmp) / "models")["mlpack"]
        roots = {"before": before_root, "off": servers.REPO_ROOT, "on": servers.REPO_ROOT}
        on = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_TRACES_SAMPLER_ARG": str(args.ratio)}
        envs: dict[str, dict[str, str]] = {"before": {}, "off": {}, "on": on}
        for rep in range(args.repeats):
            order = variants if rep % 2 == 0 else variants[::-1]
            for variant in order:
                server = servers.start_mlpack(repo, repo_root=roots[variant], env=envs[variant])
                try:
                    _measure(server, body, args.concurrency, 2.0)  # warm-up
                    row = _measure(server, body, args.concurrency, args.duration)
                finally:
                    server.stop()
                rows[variant].append(row)
                print(
                    f"[{rep + 1}/{args.repeats}] {variant:6} c={args.concurrency}"
                    f" {row['rps']:>8,.0f} req/s  p50 {row['p50_ms']:.2f} ms"
                    f"  p99 {row['p99_ms']:.2f} ms  err {row['errors']}",
                    flush=True,
                )
        time.sleep(1.0)  # the last spans arrive
    spans = len(received.spans)
    receiver.close()
    medians = {
        v: {m: statistics.median(r[m] for r in rows[v]) for m in ("rps", "p50_ms", "p99_ms")}
        for v in variants
    }
    base = medians.get("before") or medians[variants[0]]
    report = {
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "repeats": args.repeats,
        "before_rev": args.before_rev,
        "sampling_ratio": args.ratio,
        "medians": medians,
        "ratios_to_before": {
            v: {m: medians[v][m] / base[m] for m in base if base[m]} for v in variants
        },
        "spans_received": spans,
        "runs": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    for v in variants:
        m = medians[v]
        ratio = "" if m is base else f"  ratio {m['rps'] / base['rps']:.3f}"
        latency = f"p50 {m['p50_ms']:.2f} ms  p99 {m['p99_ms']:.2f} ms"
        print(f"{v:6} {m['rps']:>8,.0f} req/s  {latency}{ratio}")
    print(f"spans received with tracing on: {spans}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
