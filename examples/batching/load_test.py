"""Load test: one-row requests at a given concurrency, against one model or both.

    python load_test.py                      # both models, compares throughput
    python load_test.py --model forest -n 2000 -c 64

Every answer is checked against the model's own ``predict`` on this machine, so a
batching bug (rows swapped between requests) fails loudly, not just slowly.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import joblib
import numpy as np

HERE = Path(__file__).resolve().parent
MODELS = ("forest", "forest-batched")


@dataclass
class Result:
    model: str
    requests: int
    seconds: float
    wrong: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


async def load(url: str, model: str, requests: int, concurrency: int, seed: int = 0) -> Result:
    """Send ``requests`` one-row requests, ``concurrency`` at a time; count wrong answers."""
    rng = np.random.default_rng(seed)
    rows = rng.uniform([4.3, 2.0, 1.0, 0.1], [7.9, 4.4, 6.9, 2.5], size=(requests, 4)).round(1)
    expected = joblib.load(HERE / "model.joblib").predict(rows)
    pending = iter(range(requests))
    wrong = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal wrong
        for index in pending:
            body = {
                "inputs": [
                    {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": rows[index].tolist()}
                ]
            }
            response = await client.post(f"/v2/models/{model}/infer", json=body)
            response.raise_for_status()
            if response.json()["outputs"][0]["data"] != [int(expected[index])]:
                wrong += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        await worker_warmup(client, model)
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Result(model, requests, elapsed, wrong)


async def worker_warmup(client: httpx.AsyncClient, model: str) -> None:
    body = {
        "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]
    }
    (await client.post(f"/v2/models/{model}/infer", json=body)).raise_for_status()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://localhost:8080")
    parser.add_argument("--model", choices=MODELS, action="append", help="default: both")
    parser.add_argument("-n", "--requests", type=int, default=1000)
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    parser.add_argument(
        "--min-gain",
        type=float,
        default=None,
        help="exit 1 unless forest-batched is at least this many times faster",
    )
    args = parser.parse_args(argv)
    results = {}
    for model in args.model or MODELS:
        result = asyncio.run(load(args.url, model, args.requests, args.concurrency))
        results[model] = result
        print(
            f"{model:<15} {result.rate:8.0f} req/s  ({result.requests} requests, "
            f"concurrency {args.concurrency}, {result.wrong} wrong answers)"
        )
    if any(result.wrong for result in results.values()):
        return 1
    if len(results) == 2:
        gain = results["forest-batched"].rate / results["forest"].rate
        print(f"adaptive batching: {gain:.1f}x the throughput")
        if args.min_gain is not None and gain < args.min_gain:
            print(f"expected at least {args.min_gain}x", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
