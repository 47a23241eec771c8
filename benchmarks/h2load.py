"""A load generator that leaves the cores to the server: nghttp2's ``h2load``.

The Python gRPC driver (``mlpack.bench.drivers.GrpcDriver``, grpcio underneath) costs about
a third of a core at a few thousand calls per second; on a 2-core machine that is CPU the
server under test does not get. ``h2load`` (C, one thread) sends the same framed
``ModelInferRequest`` over HTTP/2 cleartext with gRPC's headers for a few % of a core.

h2load only sees HTTP statuses, and a gRPC error travels as HTTP 200 with a non-zero
``grpc-status`` trailer, so success is checked on the server: its
``grpc_server_handled_total{grpc_method="ModelInfer",grpc_code=...}`` counters (mlpack and
MLServer both export them) are read before and after the run. Calls h2load leaves in flight
when the duration ends are cancelled by the client: up to one per connection is expected
and reported as ``cancelled_at_end``; every other non-OK call is an error.

``run_http`` drives REST the same way over HTTP/1.1 keep-alive (``--h1``), where h2load sees
every status itself. Installing it: Debian/Ubuntu ``apt-get install nghttp2-client`` (CI
installs it for ``tests/e2e/test_bench_h2load.py``).

Usage as a CLI: ``python -m benchmarks.h2load HOST:PORT BODY.pb -c 32 -d 5 [--metrics URL]``.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from mlpack.bench.loadgen import percentile

GRPC_PATH = "/inference.GRPCInferenceService/ModelInfer"
METHOD = "ModelInfer"
_HANDLED = re.compile(r"^grpc_server_handled_total\{([^}]*)\}\s+([0-9.eE+-]+)", re.M)
_LABEL = re.compile(r'(\w+)="([^"]*)"')
_FINISHED = re.compile(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s")
_REQUESTS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout"
)
_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")


class H2loadMissing(RuntimeError):
    """h2load is not installed."""


def available() -> bool:
    return shutil.which("h2load") is not None


def frame(message: bytes) -> bytes:
    """One gRPC length-prefixed message: flag 0 (not compressed), 4-byte big-endian length."""
    return b"\x00" + struct.pack(">I", len(message)) + message


def handled_counts(metrics_url: str, method: str = METHOD) -> dict[str, float]:
    """The server's ``grpc_server_handled_total`` of ``method`` by status code."""
    return parse_handled(httpx.get(metrics_url, timeout=10).text, method)


def parse_handled(text: str, method: str = METHOD) -> dict[str, float]:
    """``grpc_server_handled_total`` of ``method`` by status code from Prometheus text,
    summed over other labels (e.g. mlpack's per-front-end label)."""
    counts: dict[str, float] = {}
    for labels, value in _HANDLED.findall(text):
        found = dict(_LABEL.findall(labels))
        if found.get("grpc_method") != method:
            continue
        code = found.get("grpc_code", "UNKNOWN")
        counts[code] = counts.get(code, 0.0) + float(value)
    return counts


def parse_output(text: str) -> dict[str, int | float]:
    """The counts and rate in h2load's summary (raises ValueError if they are missing)."""
    finished, requests = _FINISHED.search(text), _REQUESTS.search(text)
    if finished is None or requests is None:
        raise ValueError(f"h2load printed no summary:\n{text[-2000:]}")
    _total, started, done, succeeded, failed, errored, timeout = map(int, requests.groups())
    status = _STATUS.search(text)
    non_2xx = sum(map(int, status.groups()[1:])) if status else 0
    return {
        "seconds": float(finished.group(1)) / (1000.0 if finished.group(2) == "ms" else 1.0),
        "rps": float(finished.group(3)),
        "done": done,
        "succeeded": succeeded,
        "failed": failed,
        "errored": errored,
        "timeout": timeout,
        "non_2xx": non_2xx,
        "not_done": started - done,
    }


def latencies_ms(log: Path) -> list[float]:
    """Per-request durations from h2load's ``--log-file`` (start µs, status, duration µs)."""
    out: list[float] = []
    for line in log.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[1] == "200":
            out.append(int(parts[2]) / 1000.0)
    return out


def _h2load(
    url: str,
    body: bytes,
    headers: list[str],
    concurrency: int,
    duration: float,
    warmup: float,
    http1: bool = False,
) -> dict[str, Any]:
    """Run h2load closed loop (``concurrency`` connections, one request in flight each);
    the row the scenarios read, from h2load's own counts."""
    exe = shutil.which("h2load")
    if exe is None:
        raise H2loadMissing("h2load not found: apt-get install nghttp2-client")
    with tempfile.TemporaryDirectory(prefix="h2load-") as tmp:
        data = Path(tmp) / "body"
        data.write_bytes(body)
        log = Path(tmp) / "requests.tsv"
        argv = [
            exe,
            f"--clients={concurrency}",
            "--max-concurrent-streams=1",
            "--threads=1",
            f"--duration={round(duration * 1000)}ms",  # h2load takes whole units only
            f"--warm-up-time={round(warmup * 1000)}ms",
            f"--data={data}",
            f"--log-file={log}",
            *(f"--header={header}" for header in headers),
        ]
        if http1:
            argv.append("--h1")
        argv.append(url)
        usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall0 = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration + warmup + 60)
        wall = time.monotonic() - wall0
        usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        summary = parse_output(proc.stdout + proc.stderr)
        lat = sorted(latencies_ms(log))
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    # h2load's "failed" already counts non-2xx answers, errored and timed-out requests.
    errors = int(
        max(summary["failed"], summary["non_2xx"] + summary["errored"] + summary["timeout"])
    )
    return {
        "loadgen": "h2load",
        "requests": int(summary["done"]),
        "errors": errors,
        "wall_s": float(summary["seconds"]),
        "rps": float(summary["rps"]),
        "p50_ms": percentile(lat, 50),
        "p95_ms": percentile(lat, 95),
        "p99_ms": percentile(lat, 99),
        "mean_ms": sum(lat) / len(lat) if lat else 0.0,
        "loadgen_cpu": cpu / max(wall, 1e-9),
        "error_samples": [],
    }


def run_http(
    url: str,
    body: bytes,
    concurrency: int,
    duration: float,
    warmup: float = 1.0,
    content_type: str = "application/json",
) -> dict[str, Any]:
    """HTTP/1.1 keep-alive POSTs of ``body`` to ``url``; any non-2xx answer is an error."""
    headers = [f"content-type: {content_type}"]
    return _h2load(url, body, headers, concurrency, duration, warmup, http1=True)


def run(
    target: str,
    message: bytes,
    concurrency: int,
    duration: float,
    warmup: float = 1.0,
    metrics_url: str | None = None,
    deadline: float | None = 30.0,
) -> dict[str, Any]:
    """Closed loop: ``concurrency`` connections with one ModelInfer call in flight each.

    Returns the keys ``mlpack.bench.loadgen.LoadResult.to_dict`` has that the scenarios
    read (``rps``, ``p50_ms``, ``p99_ms``, ``errors``, ``loadgen_cpu``...) plus what the
    server counted (``server_ok``, ``server_errors`` by code, ``cancelled_at_end``).
    ``deadline`` is sent as ``grpc-timeout`` like the Python driver's per-call timeout.
    """
    headers = ["content-type: application/grpc", "te: trailers"]
    if deadline is not None:
        headers.append(f"grpc-timeout: {max(1, round(deadline))}S")
    before = handled_counts(metrics_url) if metrics_url else None
    row = _h2load(
        f"http://{target}{GRPC_PATH}", frame(message), headers, concurrency, duration, warmup
    )
    if before is not None and metrics_url:
        time.sleep(0.2)  # the last calls' counters land after their responses
        after = handled_counts(metrics_url)
        delta = {code: after.get(code, 0.0) - before.get(code, 0.0) for code in after}
        cancelled = int(delta.pop("CANCELLED", 0.0))
        ok = int(delta.pop("OK", 0.0))
        bad = {code: int(n) for code, n in delta.items() if n}
        # One call per connection may be cut off when h2load stops; more is a failure.
        extra_cancelled = max(0, cancelled - concurrency)
        row["server_ok"] = ok
        row["server_errors"] = bad
        row["cancelled_at_end"] = cancelled - extra_cancelled
        # The counters include the warm-up's calls, so OK below h2load's count of answered
        # calls means some were answered 200 with an error status the counters missed.
        row["errors"] += max(sum(bad.values()) + extra_cancelled, row["requests"] - ok)
        if bad:
            row["error_samples"] = [f"server counted {n} x {code}" for code, n in bad.items()]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.h2load", description=__doc__)
    parser.add_argument("target", help="HOST:PORT of the gRPC server")
    parser.add_argument("body", type=Path, help="a serialized ModelInferRequest")
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    parser.add_argument("-d", "--duration", type=float, default=5.0)
    parser.add_argument("-w", "--warmup", type=float, default=1.0)
    parser.add_argument("--metrics", help="the server's /metrics URL (checks success there)")
    args = parser.parse_args(argv)
    row = run(
        args.target,
        args.body.read_bytes(),
        args.concurrency,
        args.duration,
        args.warmup,
        args.metrics,
    )
    print(json.dumps(row, indent=2))
    return 0 if row["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
