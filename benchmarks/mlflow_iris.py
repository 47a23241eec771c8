"""An MLflow iris model: mlpack's MLflow runtime against MLServer's ``mlserver-mlflow``.

One scikit-learn LogisticRegression on iris, saved once with ``mlflow.sklearn.save_model``
(column signature, so both servers decode requests with ``pd`` into a DataFrame), served by
``mlpack_mlflow.MLflowModel`` and by ``mlserver_mlflow.MLflowRuntime`` (MLServer 1.7.1 in
its own virtualenv). Measures start time (load), idle memory, and one-row REST requests at
the given concurrencies, alternating servers every run; writes
benchmarks/results/mlflow_iris.json.

Usage: ``python -m benchmarks.mlflow_iris [--only mlpack|mlserver] [-d 10] [-r 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import iris_rest, loadgen, servers
from benchmarks.mlserver_env import ensure_mlserver

RESULTS = Path(__file__).resolve().parent / "results" / "mlflow_iris.json"
VENV_DIR = Path(__file__).resolve().parent / ".venv-mlserver-mlflow"
NAME = "iris"
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ROW = [5.1, 3.5, 1.4, 0.2]
IMPLEMENTATIONS = {
    "mlpack": "mlpack_mlflow.MLflowModel",
    "mlserver": "mlserver_mlflow.MLflowRuntime",
}


def mlserver_requirements() -> tuple[str, ...]:
    """MLServer's MLflow runtime, with this environment's scikit-learn and skops versions."""
    import sklearn
    import skops

    return (
        "mlserver==1.7.1",
        "mlserver-mlflow==1.7.1",
        "uvloop==0.21.0",
        f"scikit-learn=={sklearn.__version__}",
        f"skops=={skops.__version__}",
    )


def request_body() -> bytes:
    """One iris row, one FP64 tensor per signature column."""
    inputs = [
        {"name": c, "shape": [1], "datatype": "FP64", "data": [v]}
        for c, v in zip(COLUMNS, ROW, strict=True)
    ]
    return json.dumps({"inputs": inputs}, separators=(",", ":")).encode()


def write_folders(root: Path) -> dict[str, Path]:
    """Save the MLflow model once; each server gets a repository holding a copy of it."""
    import shutil
    import warnings

    import mlflow.sklearn
    import pandas as pd
    import sklearn
    import skops
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    frame = pd.DataFrame(features, columns=COLUMNS)
    model = LogisticRegression(max_iter=1000).fit(frame, labels)
    saved = root / "saved"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.sklearn.save_model(
            model,
            str(saved),
            signature=infer_signature(frame, model.predict(frame)),
            pip_requirements=[
                f"scikit-learn=={sklearn.__version__}",
                f"skops=={skops.__version__}",
            ],
        )
    repos = {}
    for server, implementation in IMPLEMENTATIONS.items():
        folder = shutil.copytree(saved, root / server / NAME)
        (folder / "model-settings.json").write_text(
            json.dumps({"name": NAME, "implementation": implementation}, indent=2) + "\n"
        )
        repos[server] = folder.parent
    return repos


def _start(
    name: str, repo: Path, mlserver_exe: Path | None, workers: int | None
) -> servers.ServerProcess:
    if name == "mlserver":
        assert mlserver_exe is not None
        return servers.start_mlserver(
            mlserver_exe, repo, parallel_workers=workers, ready_timeout=300
        )
    _, path_env = servers.mlpack_command()
    runtime = str(servers.REPO_ROOT / "runtimes" / "mlflow")
    env = {"PYTHONPATH": os.pathsep.join([runtime, path_env["PYTHONPATH"]])}
    return servers.start_mlpack(repo, parallel_workers=workers, env=env, ready_timeout=300)


def run(args: argparse.Namespace) -> dict[str, Any]:
    names = [n for n in iris_rest.SERVERS if args.only in (None, n)]
    body = request_body()
    started: dict[str, servers.ServerProcess] = {}
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {n: {} for n in names}
    infer_path = iris_rest.INFER_PATH  # the model is called "iris", as in iris_rest
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-") as tmp:
        repos = write_folders(Path(tmp))
        exe = (
            ensure_mlserver(VENV_DIR, requirements=mlserver_requirements())
            if "mlserver" in names
            else None
        )
        try:
            for name in names:  # one at a time: start-up times do not compete for the CPU
                started[name] = _start(name, repos[name], exe, getattr(args, f"{name}_workers"))
                server = started[name]
                print(
                    f"{name}: ready in {server.start_s:.2f} s, "
                    f"idle RSS {server.idle_rss_mib:.0f} MiB"
                    f" (PSS {server.idle_pss_mib:.0f} MiB)",
                    flush=True,
                )
            for name in names:
                check = _answer(started[name], infer_path, body)
                print(f"{name}: answers {check}", flush=True)
                if args.warmup > 0:
                    iris_rest._measure(started[name], body, max(args.concurrency), args.warmup)
            for rep in range(args.repeats):
                order = names if rep % 2 == 0 else names[::-1]
                for c in args.concurrency:
                    for name in order:
                        row = iris_rest._measure(started[name], body, c, args.duration)
                        raw[name].setdefault(f"c{c}", []).append(row)
                        print(
                            f"[{rep + 1}/{args.repeats}] {name:8} c={c:<3} "
                            f"{row['rps']:>8,.0f} req/s"
                            f"  p50 {row['p50_ms']:.2f} ms  server {row['server_cpu']:.2f} cores"
                            f"  err {row['errors']}",
                            flush=True,
                        )
        finally:
            for server in started.values():
                server.stop()
    return iris_rest.report("mlflow_iris", args, names, started, raw)


def _answer(server: servers.ServerProcess, path: str, body: bytes) -> Any:
    """The server's outputs for the request (both must say class 0 for this row)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
    try:
        conn.request("POST", path, body, {"Content-Type": "application/json"})
        reply = conn.getresponse()
        payload = json.loads(reply.read())
    finally:
        conn.close()
    if reply.status != 200:
        raise RuntimeError(f"{server.name} answered {reply.status}: {payload}")
    return [(o["name"], o["data"]) for o in payload["outputs"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.mlflow_iris", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--only", choices=iris_rest.SERVERS, help="benchmark one server only")
    parser.add_argument("-d", "--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("-r", "--repeats", type=int, default=3, help="repeats; medians reported")
    parser.add_argument("-c", "--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument(
        "-w", "--warmup", type=float, default=3.0, help="warm-up seconds per server"
    )
    parser.add_argument("--mlpack-workers", type=int, help="parallel_workers for mlpack")
    parser.add_argument("--mlserver-workers", type=int, help="parallel_workers for MLServer")
    parser.add_argument("-o", "--output", type=Path, default=RESULTS, help="JSON output")
    args = parser.parse_args(argv)
    loadgen.install_uvloop()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        report = run(args)
    except KeyboardInterrupt:
        print("interrupted: servers stopped", file=sys.stderr)
        return 130
    print()
    print(iris_rest.render_table(report))
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
