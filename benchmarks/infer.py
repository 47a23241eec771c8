"""Scenario: a batch job of N iris requests against one ``mlpack start``.

``mlpack infer`` vs ``mlserver infer``.

Both clients read the same JSONL file and send it to the same server with the same workers and
batch size; rows/s is input lines / wall time of the whole command (interpreter start included).

    python -m benchmarks.infer                       # 20,000 requests, -w 16, -s 1
    python -m benchmarks.infer -n 5000 -s 1 32 --venv /path/to/.venv-mlserver
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .mlserver_env import VENV_DIR, ensure_mlserver
from .models import IRIS_INPUT, IRIS_NAME, write_iris_folders
from .servers import REPO_ROOT, mlpack_command, running, start_mlpack

RESULTS = Path(__file__).resolve().parent / "results" / "infer.json"


def write_requests(path: Path, count: int) -> Path:
    """``count`` one-row iris requests, each row different."""
    with open(path, "w") as file:
        for i in range(count):
            row = [
                4.3 + (i % 36) * 0.1,
                2.0 + (i % 24) * 0.1,
                1.0 + (i % 59) * 0.1,
                0.1 + (i % 25) * 0.1,
            ]
            file.write(
                json.dumps(
                    {
                        "inputs": [
                            {
                                "name": IRIS_INPUT,
                                "shape": [1, 4],
                                "datatype": "FP64",
                                "data": [round(v, 2) for v in row],
                            }
                        ]
                    }
                )
                + "\n"
            )
    return path


def _ok_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, "rb") as file:
        return sum(1 for line in file if b'"outputs"' in line)


def _run(
    name: str, argv: list[str], env: dict[str, str], output: Path, count: int
) -> dict[str, Any]:
    started = time.monotonic()
    result = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=1800, start_new_session=True
    )
    elapsed = time.monotonic() - started
    ok = _ok_lines(output)
    if result.returncode != 0 or ok != count:
        print(
            f"{name}: exit {result.returncode}, {ok}/{count} ok\n{result.stderr[-2000:]}",
            file=sys.stderr,
        )
    return {
        "client": name,
        "seconds": round(elapsed, 3),
        "ok": ok,
        "rows_per_s": round(count / elapsed, 1),
        "exit_code": result.returncode,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    mlserver = ensure_mlserver(args.venv)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    prefix, path_env = mlpack_command(REPO_ROOT)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-infer-") as tmp:
        root = Path(tmp)
        repos = write_iris_folders(root / "models")
        requests = write_requests(root / "requests.jsonl", args.count)
        with running(start_mlpack(repos["mlpack"], parallel_workers=args.mlpack_workers)) as server:
            address = f"127.0.0.1:{server.http_port}"
            for batch in args.batch_sizes:
                for repeat in range(args.repeats):
                    order = ["mlpack", "mlserver"] if repeat % 2 == 0 else ["mlserver", "mlpack"]
                    for client in order:
                        out = root / f"{client}-{batch}-{repeat}.jsonl"
                        common = [
                            "-u",
                            address,
                            "-m",
                            IRIS_NAME,
                            "-i",
                            str(requests),
                            "-o",
                            str(out),
                            "-w",
                            str(args.workers),
                            "-s",
                            str(batch),
                        ]
                        if client == "mlpack":
                            argv = [*prefix, "infer", *common, "--no-progress"]
                            run_env = {**env, **path_env}
                        else:
                            argv = [str(mlserver), "infer", *common]
                            run_env = env
                        row = _run(client, argv, run_env, out, args.count)
                        row.update(batch_size=batch, repeat=repeat)
                        rows.append(row)
                        print(
                            f"  {client:8} -s {batch:<3} {row['rows_per_s']:>9,.0f} rows/s "
                            f"({row['seconds']:.1f}s, {row['ok']}/{args.count} ok)",
                            flush=True,
                        )
    summary = []
    for batch in args.batch_sizes:
        medians = {}
        for client in ("mlpack", "mlserver"):
            values = sorted(
                r["rows_per_s"] for r in rows if r["client"] == client and r["batch_size"] == batch
            )
            medians[client] = values[len(values) // 2]
        summary.append(
            {
                "batch_size": batch,
                **{f"{c}_rows_per_s": v for c, v in medians.items()},
                "ratio": round(medians["mlpack"] / medians["mlserver"], 2),
            }
        )
    return {"count": args.count, "workers": args.workers, "summary": summary, "runs": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--count", type=int, default=20_000, help="requests in the file")
    parser.add_argument(
        "-w", "--workers", type=int, default=16, help="requests in flight (both clients)"
    )
    parser.add_argument(
        "-s", "--batch-sizes", type=int, nargs="+", default=[1], help="micro-batch sizes"
    )
    parser.add_argument(
        "-r", "--repeats", type=int, default=1, help="runs per client and batch size"
    )
    parser.add_argument(
        "--mlpack-workers", type=int, default=None, help="parallel_workers of mlpack start"
    )
    parser.add_argument("--venv", type=Path, default=VENV_DIR, help="MLServer virtualenv")
    parser.add_argument("-o", "--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    report = run(args)
    print(f"\n{'batch':>5} {'mlpack rows/s':>14} {'mlserver rows/s':>16} {'ratio':>6}")
    for line in report["summary"]:
        print(
            f"{line['batch_size']:>5} {line['mlpack_rows_per_s']:>14,.0f} "
            f"{line['mlserver_rows_per_s']:>16,.0f} {line['ratio']:>6.2f}"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    failed = any(r["ok"] != args.count for r in report["runs"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
