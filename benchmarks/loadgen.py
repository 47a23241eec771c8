"""The repo's closed-loop load generator, now living in ``mlpack.bench.loadgen``.

Re-exported here so the scenarios and ``python -m benchmarks.loadgen`` keep working.
CLI: ``python -m benchmarks.loadgen --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from mlpack.bench.drivers import GRPC_MODEL_INFER
from mlpack.bench.loadgen import (
    MAX_ERROR_SAMPLES,
    Body,
    Connection,
    Driver,
    GrpcDriver,
    HttpDriver,
    LoadResult,
    install_uvloop,
    percentile,
    run_load,
)

__all__ = [
    "GRPC_MODEL_INFER",
    "MAX_ERROR_SAMPLES",
    "Body",
    "Connection",
    "Driver",
    "GrpcDriver",
    "HttpDriver",
    "LoadResult",
    "install_uvloop",
    "main",
    "percentile",
    "run_load",
]

# --------------------------------------------------------------------------- CLI


def _read_bodies(args: argparse.Namespace) -> list[bytes]:
    bodies: list[bytes] = []
    for text in args.body or []:
        bodies.append(text.encode())
    for path in args.body_file or []:
        bodies.append(Path(path).read_bytes())
    if args.bodies_jsonl:
        for line in Path(args.bodies_jsonl).read_bytes().splitlines():
            if line.strip():
                bodies.append(line.strip())
    return bodies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.loadgen",
        description="Closed-loop load generator for V2 inference servers (HTTP/1.1 or gRPC).",
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="HTTP URL, e.g. http://127.0.0.1:8080/v2/models/iris/infer")
    target.add_argument("--grpc", metavar="HOST:PORT", help="gRPC target (ModelInfer)")
    parser.add_argument("--method", default="POST", help="HTTP method (default POST)")
    parser.add_argument("--body", action="append", help="request body text (repeatable)")
    parser.add_argument("--body-file", action="append", help="file with one body (repeatable)")
    parser.add_argument("--bodies-jsonl", help="file with one JSON body per line (HTTP)")
    parser.add_argument("-c", "--concurrency", type=int, default=1)
    parser.add_argument("-d", "--duration", type=float, default=10.0, help="seconds (default 10)")
    parser.add_argument("-n", "--requests", type=int, help="request count instead of a duration")
    parser.add_argument("-w", "--warmup", type=float, default=0.0, help="warm-up seconds")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout")
    parser.add_argument("--no-uvloop", action="store_true", help="use the default asyncio loop")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)

    bodies = _read_bodies(args)
    driver: Driver
    if args.url:
        driver = HttpDriver.from_url(args.url, method=args.method, timeout=args.timeout)
        if not bodies and args.method == "GET":
            bodies = [b""]
    else:
        driver = GrpcDriver(args.grpc, timeout=args.timeout)
    if not bodies:
        parser.error("give at least one --body, --body-file or --bodies-jsonl")
    if not args.no_uvloop and args.url:
        install_uvloop()
    result = asyncio.run(
        run_load(
            driver,
            bodies,
            concurrency=args.concurrency,
            duration=args.duration,
            requests=args.requests,
            warmup=args.warmup,
        )
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.summary())
        for sample in result.error_samples:
            print(f"  error: {sample}")
    return 0 if result.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
