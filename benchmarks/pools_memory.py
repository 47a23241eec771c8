"""Memory (PSS) of a model's own pool with 1, 2 and 4 workers, with and without the zygote.

The model holds a 200 MiB numpy array (written once, so its pages are resident). For each
(workers, zygote) pair one ``mlpack start`` serves it with ``parallel_workers: N`` and
``preload: true|false``; after every worker has answered, the server's own gauge
``worker_pool_processes_pss_bytes{pool="model:big"}`` (the workers' and the zygote's PSS
from ``/proc/<pid>/smaps_rollup``) is read, and the server process's PSS beside it.

    python -m benchmarks.pools_memory [--megabytes 200] [--workers 1 2 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import httpx

from benchmarks.servers import REPO_ROOT, start_mlpack
from mlpack.engine.workers.memory import pss_bytes

MODEL = REPO_ROOT / "tests" / "assets" / "pools" / "heavy" / "models.py"
RESULTS = REPO_ROOT / "benchmarks" / "results" / "pools_memory.json"
MiB = 2**20


def write_repository(root: Path, workers: int, zygote: bool, megabytes: int) -> Path:
    folder = root / "models" / "big"
    folder.mkdir(parents=True)
    shutil.copy(MODEL, folder / "models.py")
    settings = {
        "name": "big",
        "implementation": "models.HeavyModel",
        "parallel_workers": workers,
        "preload": zygote,
        "parameters": {"extra": {"megabytes": megabytes}},
    }
    (folder / "model-settings.json").write_text(json.dumps(settings))
    return root / "models"


async def touch_every_worker(url: str, workers: int) -> set[int]:
    """Requests held 0.3 s, 2 per worker at once: every worker answers at least one."""
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [0.3]}]}
    async with httpx.AsyncClient(timeout=60) as client:
        responses = await asyncio.gather(
            *(client.post(f"{url}/v2/models/big/infer", json=body) for _ in range(2 * workers))
        )
    pids = set()
    for response in responses:
        response.raise_for_status()
        pids.add(response.json()["outputs"][0]["data"][0])
    return pids


def pool_pss(metrics_url: str) -> float:
    for line in httpx.get(metrics_url).text.splitlines():
        if line.startswith('worker_pool_processes_pss_bytes{pool="model:big"}'):
            return float(line.rsplit(" ", 1)[1])
    raise RuntimeError("worker_pool_processes_pss_bytes not found")


def measure(workers: int, zygote: bool, megabytes: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pools-memory-") as tmp:
        repository = write_repository(Path(tmp), workers, zygote, megabytes)
        server = start_mlpack(repository.parent, env={"OPENBLAS_NUM_THREADS": "1"})
        try:
            url = f"http://127.0.0.1:{server.http_port}"
            pids = asyncio.run(touch_every_worker(url, workers))
            pool = pool_pss(f"http://127.0.0.1:{server.metrics_port}/metrics")
            main = pss_bytes(server.proc.pid)
        finally:
            server.stop()
    return {
        "workers": workers,
        "zygote": zygote,
        "workers_seen": len(pids),
        "pool_pss_mib": round(pool / MiB, 1),
        "server_pss_mib": round(main / MiB, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("-o", "--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rows = [measure(n, z, args.megabytes) for n in args.workers for z in (False, True)]
    baseline = next(r for r in rows if r["workers"] == min(args.workers) and not r["zygote"])
    print(f"model array: {args.megabytes} MiB; PSS of the pool (workers + zygote), in MiB")
    print("| workers | zygote | pool PSS | x one worker (no zygote) | server PSS |")
    print("| ---: | :---: | ---: | ---: | ---: |")
    for row in rows:
        ratio = row["pool_pss_mib"] / baseline["pool_pss_mib"]
        row["ratio_to_one_worker"] = round(ratio, 2)
        print(
            f"| {row['workers']} | {'yes' if row['zygote'] else 'no'} | "
            f"{row['pool_pss_mib']:.1f} | {ratio:.2f} | {row['server_pss_mib']:.1f} |"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"megabytes": args.megabytes, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
