"""Engine scenarios: batching, worker scaling and the worker hop, mlpack and MLServer side by side.

(a) a numpy MLP (512x2048, 2048x512, float32, relu), one row per request, concurrency 32,
    batching off and on (max_batch_size 32, max_batch_time 5 ms) on both servers;
(b) a pure-Python model doing ~2 ms of CPU work per row (a loop calibrated on this machine),
    concurrency 8, 1 and 2 workers;
(c) iris at concurrency 1: mlpack with parallel_workers 0 vs 1 (the worker hop), MLServer default;
(d) the MLP of (a) at concurrency 32 on mlpack with 1 worker: batching off, batching on without a
    worker pipeline (``worker_pipeline_depth`` 1) and with the default pipeline (2); the main
    process's and the worker's CPU (from /proc) and, from the statistics endpoint, rows per batch
    and the queue / compute split of each request.

(b), (c) and (d) compare configurations whose difference is small next to this machine's noise,
so their servers run side by side and are measured in alternating rounds (``--rounds``); the
figures are medians over rounds. (b) also measures the machine's own parallel ceiling in each
round: two processes spinning vs one, the most any 2-worker/1-worker ratio can reach here.

Usage: ``python -m benchmarks.engine [-d 5] [--rounds 3] [--only a,b,c,d] [--mlserver-venv DIR]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import h2load, loadgen, models, servers
from benchmarks.mlserver_env import VENV_DIR, ensure_mlserver

RESULTS = Path(__file__).resolve().parent / "results" / "engine.json"

_BASES = {
    "mlpack": (
        "from mlpack import MLModel\n"
        "from mlpack.codecs.tensors import tensor_as_ndarray as decode\n"
        "from mlpack.types import InferenceResponse, ResponseOutput\n"
        "def data(array): return array.reshape(-1)\n"
    ),
    "mlserver": (
        "from mlserver import MLModel\n"
        "from mlserver.codecs import NumpyCodec\n"
        "from mlserver.types import InferenceResponse, ResponseOutput\n"
        "decode = NumpyCodec.decode_input\n"
        "def data(array): return array.reshape(-1).tolist()\n"
    ),
}

_MLP = """
import numpy as np
from pathlib import Path


class MLP(MLModel):
    async def load(self):
        folder = Path(__file__).parent
        self.w1 = np.load(folder / "w1.npy")
        self.w2 = np.load(folder / "w2.npy")
        return True

    async def predict(self, payload):
        x = np.asarray(decode(payload.inputs[0]), dtype=np.float32).reshape(-1, 512)
        y = np.maximum(x @ self.w1, 0) @ self.w2
        return InferenceResponse(model_name=self.name, outputs=[
            ResponseOutput(name="y", shape=list(y.shape), datatype="FP32", data=data(y))])
"""

_BUSY = """

ITERATIONS_PER_ROW = {iterations}  # ~2 ms of pure-Python work, calibrated by the harness


class Busy(MLModel):
    def _work(self, rows):
        total = 0
        for _ in range(rows * ITERATIONS_PER_ROW):
            total += 1
        return total

    async def predict(self, payload):
        rows = payload.inputs[0].shape[0]
        self._work(rows)
        return InferenceResponse(model_name=self.name, outputs=[
            ResponseOutput(name="y", shape=[rows], datatype="INT64", data=[1] * rows)])
"""


def busy_iterations(seconds: float = 0.002) -> int:
    """Loop iterations costing ``seconds`` of this machine's CPU (the same count for both servers).

    The loop is the one ``Busy`` runs: pure Python, no system calls (a loop polling a CPU
    clock would spend most of its time in the kernel).
    """
    probe = 2_000_000
    best = float("inf")
    for _ in range(3):  # the least-disturbed of three runs
        started, total = time.thread_time(), 0
        for _ in range(probe):
            total += 1  # noqa: SIM113 (the loop is the CPU work being timed)
        best = min(best, time.thread_time() - started)
    return max(1, round(probe * seconds / best))


def _write_model(
    folder: Path, server: str, name: str, cls: str, code: str, **settings: Any
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "models.py").write_text(_BASES[server] + code)
    (folder / "model-settings.json").write_text(
        json.dumps({"name": name, "implementation": f"models.{cls}", **settings})
    )


def _mlp_repo(root: Path, server: str, batching: bool) -> Path:
    repo = root / f"mlp-{server}-{'on' if batching else 'off'}"
    folder = repo / "mlp"
    settings = {"max_batch_size": 32, "max_batch_time": 0.005} if batching else {}
    _write_model(folder, server, "mlp", "MLP", _MLP, **settings)
    rng = np.random.default_rng(0)
    np.save(folder / "w1.npy", (rng.standard_normal((512, 2048)) / 25).astype(np.float32))
    np.save(folder / "w2.npy", (rng.standard_normal((2048, 512)) / 45).astype(np.float32))
    return repo


def _busy_repo(root: Path, server: str, iterations: int) -> Path:
    repo = root / f"busy-{server}"
    code = _BUSY.replace("{iterations}", str(iterations))
    _write_model(repo / "busy", server, "busy", "Busy", code)
    return repo


def _body(name: str, datatype: str, shape: list[int], values: list[Any]) -> bytes:
    return json.dumps(
        {"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": values}]},
        separators=(",", ":"),
    ).encode()


def _load(
    url: str, body: bytes, concurrency: int, duration: float, loadgen_name: str
) -> dict[str, Any]:
    """One closed-loop run against ``url`` (``loadgen_name``: ``h2load`` or ``python``);
    the row of ``rps``, ``p50_ms``, ``p99_ms``, ``errors``, ``loadgen_cpu``."""
    if loadgen_name == "h2load":
        return h2load.run_http(url, body, concurrency, duration, warmup=0.0)
    driver = loadgen.HttpDriver.from_url(url)
    result = asyncio.run(
        loadgen.run_load(driver, [body], concurrency=concurrency, duration=duration)
    )
    return result.to_dict() | {"loadgen": "python"}


def _measure(
    server: servers.ServerProcess,
    model: str,
    body: bytes,
    concurrency: int,
    duration: float,
    loadgen_name: str = "python",
) -> dict[str, Any]:
    url = f"{server.base_url}/v2/models/{model}/infer"
    _load(url, body, concurrency, 1.0, loadgen_name)  # warm-up
    row = _load(url, body, concurrency, duration, loadgen_name)
    keys = ("rps", "p50_ms", "p90_ms", "p99_ms", "errors", "loadgen_cpu")
    return {k: row[k] for k in keys if k in row}


def _start(
    server_name: str, repo: Path, mlserver_exe: Path, workers: int | None
) -> servers.ServerProcess:
    if server_name == "mlpack":
        return servers.start_mlpack(repo, parallel_workers=workers, settle=0.2)
    return servers.start_mlserver(mlserver_exe, repo, parallel_workers=workers, settle=0.2)


def _print_row(label: str, model: str, concurrency: int, row: dict[str, Any]) -> None:
    print(
        f"  {label:24} {model:5} c={concurrency}: "
        f"{row['rps']:8.1f} req/s  p50 {row['p50_ms']:.3f} ms  errors {row['errors']}",
        flush=True,
    )


def _run(
    server_name: str,
    repo: Path,
    mlserver_exe: Path,
    workers: int | None,
    model: str,
    body: bytes,
    concurrency: int,
    duration: float,
    loadgen_name: str = "python",
) -> dict[str, Any]:
    with servers.running(_start(server_name, repo, mlserver_exe, workers)) as server:
        row = _measure(server, model, body, concurrency, duration, loadgen_name)
    _print_row(f"{server_name} workers={workers}", model, concurrency, row)
    return row


@contextlib.contextmanager
def _all_running(
    configs: dict[str, tuple[str, Path, int | None]], mlserver_exe: Path
) -> Iterator[dict[str, servers.ServerProcess]]:
    """Start every configuration's server (label -> (server, repo, workers)); stop them all."""
    started: dict[str, servers.ServerProcess] = {}
    with contextlib.ExitStack() as stack:
        for label, (server_name, repo, workers) in configs.items():
            started[label] = stack.enter_context(
                servers.running(_start(server_name, repo, mlserver_exe, workers))
            )
        yield started


def _rounds(
    configs: dict[str, tuple[str, Path, int | None]],
    mlserver_exe: Path,
    model: str,
    body: bytes,
    concurrency: int,
    duration: float,
    rounds: int,
    between: Any = None,
) -> list[dict[str, Any]]:
    """Measure every configuration once per round, in turn; ``between()`` runs once per round."""
    results: list[dict[str, Any]] = []
    with _all_running(configs, mlserver_exe) as running:
        for index in range(rounds):
            print(f" round {index + 1}/{rounds}", flush=True)
            result: dict[str, Any] = {}
            for label, server in running.items():
                result[label] = row = _measure(server, model, body, concurrency, duration)
                _print_row(label, model, concurrency, row)
            if between is not None:
                result["extra"] = between()
            results.append(result)
    return results


def _spin(seconds: float, counts: Any) -> None:
    deadline, count = time.perf_counter() + seconds, 0
    while time.perf_counter() < deadline:
        for _ in range(10_000):
            count += 1
    counts.put(count)


def parallel_ceiling(seconds: float = 2.0) -> float:
    """How much work two spinning processes get done relative to one (2.0 on two free cores)."""
    totals = []
    for n in (1, 2):
        counts: Any = multiprocessing.Queue()
        procs = [multiprocessing.Process(target=_spin, args=(seconds, counts)) for _ in range(n)]
        for proc in procs:
            proc.start()
        totals.append(sum(counts.get() for _ in procs))
        for proc in procs:
            proc.join()
    ceiling = totals[1] / totals[0]
    print(f"  machine: 2 spinning processes / 1 = {ceiling:.2f}", flush=True)
    return ceiling


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _roles(server: servers.ServerProcess) -> dict[str, int]:
    """The server's main process and its (first) worker process, by pid."""
    roles = {"main": server.proc.pid}
    for pid in servers.process_tree(server.proc.pid)[1:]:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read()
        except OSError:
            continue
        if b"spawn_main" in command:  # a multiprocessing "spawn" child (not the tracker)
            roles.setdefault("worker", pid)
    return roles


def _model_stats(server: servers.ServerProcess, model: str) -> dict[str, Any]:
    url = f"{server.base_url}/v2/models/{model}/stats"
    with urllib.request.urlopen(url, timeout=10) as answer:
        stats: dict[str, Any] = json.loads(answer.read())["model_stats"][0]
    return stats


def _measure_split(
    server: servers.ServerProcess,
    model: str,
    body: bytes,
    concurrency: int,
    duration: float,
    loadgen_name: str = "python",
) -> dict[str, Any]:
    """``_measure`` plus each process's CPU (cores) and, from the server's statistics, rows
    per batch and each request's mean queue and compute time.

    Success is also checked on the server: the model's successful inferences over the run
    must cover every 200 the load generator counted, and it must count no failures beyond the
    requests cut off when the load generator stopped (one per connection at most).
    """
    url = f"{server.base_url}/v2/models/{model}/infer"
    _load(url, body, concurrency, 1.0, loadgen_name)  # warm-up
    time.sleep(0.2)  # its cut-off requests are counted before the run starts
    roles = _roles(server)
    before = _model_stats(server, model)
    cpu0 = {role: _cpu_seconds(pid) for role, pid in roles.items()}
    started = time.perf_counter()
    result = _load(url, body, concurrency, duration, loadgen_name)
    wall = time.perf_counter() - started
    cpu = {f"{role}_cpu": (_cpu_seconds(pid) - cpu0[role]) / wall for role, pid in roles.items()}
    time.sleep(0.2)  # the last requests' statistics land after their responses
    after = _model_stats(server, model)
    count = after["inference_count"] - before["inference_count"]
    executions = after["execution_count"] - before["execution_count"]
    inference = {
        key: after["inference_stats"][key]["ns"] - before["inference_stats"][key]["ns"]
        for key in ("queue", "compute_infer", "success", "fail")
    }
    counts = {
        key: after["inference_stats"][key]["count"] - before["inference_stats"][key]["count"]
        for key in ("success", "fail")
    }
    # The requests in flight when the load generator stops are cut off with their connection
    # and the server counts them as failed (cancelled): up to one per connection is expected.
    cancelled_at_end = min(counts["fail"], concurrency)
    answered_ok = result["requests"] - result["errors"]
    server_errors = counts["fail"] - cancelled_at_end + max(0, answered_ok - counts["success"])
    row = {k: v for k, v in result.items() if k in ("rps", "p50_ms", "p99_ms", "errors")}
    row["errors"] += server_errors
    row["server_ok"] = counts["success"]
    row["cancelled_at_end"] = cancelled_at_end
    row["loadgen"] = result.get("loadgen", loadgen_name)
    row["loadgen_cpu"] = result.get("loadgen_cpu", 0.0)
    row.update(cpu)
    # CPU per request (µs): what bounds throughput once the cores are shared out; it moves
    # less with the machine's load than req/s does.
    for role in roles:
        rps = row["rps"]
        row[f"{role}_us_per_request"] = 1e6 * row[f"{role}_cpu"] / rps if rps else 0.0
    row["rows_per_batch"] = count / executions if executions else 0.0
    row["queue_ms"] = inference["queue"] / 1e6 / count if count else 0.0
    row["compute_ms"] = inference["compute_infer"] / 1e6 / count if count else 0.0
    return row


def _pipeline_rounds(
    root: Path,
    body: bytes,
    duration: float,
    rounds: int,
    loadgen_name: str = "python",
    against: Path | None = None,
) -> list[dict[str, Any]]:
    """(d): the three 1-worker configurations side by side, measured in alternating rounds
    (with ``against``, a checkout of another version: its batching off and depth 2 too)."""
    configs: dict[str, tuple[bool, int, Path]] = {
        "batch-off": (False, 2, servers.REPO_ROOT),
        "batch-on-depth-1": (True, 1, servers.REPO_ROOT),
        "batch-on-depth-2": (True, 2, servers.REPO_ROOT),
    }
    if against is not None:
        configs["against-batch-off"] = (False, 2, against)
        configs["against-batch-on-depth-2"] = (True, 2, against)
    results: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        running = {
            label: stack.enter_context(
                servers.running(
                    servers.start_mlpack(
                        _mlp_repo(root / label, "mlpack", batching),
                        parallel_workers=1,
                        repo_root=checkout,
                        env={"MLPACK_WORKER_PIPELINE_DEPTH": str(depth)},
                        settle=0.2,
                    )
                )
            )
            for label, (batching, depth, checkout) in configs.items()
        }
        for index in range(rounds):
            print(f" round {index + 1}/{rounds}", flush=True)
            result: dict[str, Any] = {}
            # Alternate the order so no configuration always runs first after a pause.
            order = list(running.items())
            for label, server in order if index % 2 == 0 else reversed(order):
                result[label] = row = _measure_split(
                    server, "mlp", body, 32, duration, loadgen_name
                )
                print(
                    f"  {label:18} {row['rps']:8.1f} req/s  p50 {row['p50_ms']:6.2f} ms  "
                    f"cpu main {row['main_cpu']:.2f} worker {row.get('worker_cpu', 0.0):.2f} "
                    f"(µs/req {row['main_us_per_request']:.0f} + "
                    f"{row.get('worker_us_per_request', 0.0):.0f})  "
                    f"rows/batch {row['rows_per_batch']:5.1f}  queue {row['queue_ms']:.2f} ms  "
                    f"compute {row['compute_ms']:.2f} ms  errors {row['errors']}",
                    flush=True,
                )
            results.append(result)
    return results


def _median_ratio(results: list[dict[str, Any]], top: str, bottom: str, key: str = "rps") -> float:
    return statistics.median(r[top][key] / r[bottom][key] for r in results)


def _medians(results: list[dict[str, Any]], label: str) -> dict[str, Any]:
    rows = [r[label] for r in results]
    return {key: statistics.median(row[key] for row in rows) for key in rows[0]}


def run(args: argparse.Namespace) -> dict[str, Any]:
    only = set(args.only.split(","))
    # (d) runs mlpack alone: no MLServer environment needed for it.
    mlserver_exe = ensure_mlserver(args.mlserver_venv) if only & {"a", "b", "c"} else Path()
    root = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    report: dict[str, Any] = {"duration_s": args.duration}
    if "a" in only:
        print("(a) MLP, one row per request, c=32", flush=True)
        body = _body("x", "FP32", [1, 512], [0.5] * 512)
        rows = {}
        for batching in (False, True):
            for name in ("mlpack", "mlserver"):
                repo = _mlp_repo(root, name, batching)
                rows[f"{name}-batch-{'on' if batching else 'off'}"] = _run(
                    name,
                    repo,
                    mlserver_exe,
                    None,
                    "mlp",
                    body,
                    32,
                    args.duration,
                    args.rest_loadgen,
                )
        rows["ratio_mlpack_on_over_off"] = (
            rows["mlpack-batch-on"]["rps"] / rows["mlpack-batch-off"]["rps"]
        )
        rows["ratio_mlpack_on_over_mlserver_on"] = (
            rows["mlpack-batch-on"]["rps"] / rows["mlserver-batch-on"]["rps"]
        )
        report["a_mlp_batching"] = rows
    if "b" in only:
        print("(b) pure Python, 2 ms CPU per row, c=8", flush=True)
        body = _body("x", "FP64", [1, 1], [1.0])
        iterations = busy_iterations()
        print(f"  {iterations:,} loop iterations per row (~2 ms here)", flush=True)
        configs = {
            f"{name}-workers-{workers}": (name, _busy_repo(root, name, iterations), workers)
            for workers in (1, 2)
            for name in ("mlpack", "mlserver")
        }
        results = _rounds(
            configs,
            mlserver_exe,
            "busy",
            body,
            8,
            args.duration,
            args.rounds,
            between=parallel_ceiling,
        )
        rows = {label: _medians(results, label) for label in configs}
        rows["ratio_mlpack_2_over_1"] = _median_ratio(
            results, "mlpack-workers-2", "mlpack-workers-1"
        )
        rows["ratio_mlserver_2_over_1"] = _median_ratio(
            results, "mlserver-workers-2", "mlserver-workers-1"
        )
        rows["ratio_machine_2_over_1"] = statistics.median(r["extra"] for r in results)
        report["b_worker_scaling"] = rows
    if "c" in only:
        print("(c) iris, c=1: the worker hop", flush=True)
        repos = models.write_iris_folders(root / "iris")
        body = models.iris_request_body()
        configs = {
            f"mlpack-workers-{workers}": ("mlpack", repos["mlpack"], workers) for workers in (0, 1)
        }
        results = _rounds(configs, mlserver_exe, "iris", body, 1, args.duration, args.rounds)
        rows = {label: _medians(results, label) for label in configs}
        rows["mlserver-default"] = _run(
            "mlserver", repos["mlserver"], mlserver_exe, None, "iris", body, 1, args.duration
        )
        rows["hop_us_p50"] = 1000 * statistics.median(
            r["mlpack-workers-1"]["p50_ms"] - r["mlpack-workers-0"]["p50_ms"] for r in results
        )
        report["c_worker_hop"] = rows
    if "d" in only:
        print("(d) MLP, c=32, 1 worker: batching off / on without a pipeline / on", flush=True)
        body = _body("x", "FP32", [1, 512], [0.5] * 512)
        load_before = os.getloadavg()[0]
        results = _pipeline_rounds(
            root / "pipeline", body, args.duration, args.rounds, args.rest_loadgen, args.against
        )
        rows = {label: _medians(results, label) for label in results[0]}
        rows["ratio_on_over_off"] = _median_ratio(results, "batch-on-depth-2", "batch-off")
        rows["ratio_on_depth_1_over_off"] = _median_ratio(results, "batch-on-depth-1", "batch-off")
        rows["ratio_pipeline_depth_2_over_1"] = _median_ratio(
            results, "batch-on-depth-2", "batch-on-depth-1"
        )
        rows["ratio_worker_cpu_depth_2_over_1"] = _median_ratio(
            results, "batch-on-depth-2", "batch-on-depth-1", "worker_cpu"
        )
        # Main-process CPU per request, batching off over on (above 1: on is cheaper).
        rows["ratio_main_us_off_over_on"] = _median_ratio(
            results, "batch-off", "batch-on-depth-2", "main_us_per_request"
        )
        if args.against is not None:
            for label in ("batch-off", "batch-on-depth-2"):
                rows[f"ratio_main_us_{label}_over_against"] = _median_ratio(
                    results, label, f"against-{label}", "main_us_per_request"
                )
                rows[f"ratio_worker_us_{label}_over_against"] = _median_ratio(
                    results, label, f"against-{label}", "worker_us_per_request"
                )
        rows["loadgen"] = args.rest_loadgen
        rows["load_average_1min"] = [load_before, os.getloadavg()[0]]
        report["d_worker_pipeline"] = rows
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-d", "--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--only", default="a,b,c,d", help="scenarios to run, e.g. a,c")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating measurement rounds for (b)-(d) (3)"
    )
    parser.add_argument("--mlserver-venv", type=Path, default=VENV_DIR)
    parser.add_argument(
        "--rest-loadgen",
        choices=("h2load", "python"),
        default="h2load" if h2load.available() else "python",
        help="REST load generator for (a) and (d) (default: h2load --h1 when installed)",
    )
    parser.add_argument(
        "--against",
        type=Path,
        help="(d) also runs this checkout of mlpack (e.g. `git archive main`), side by side",
    )
    parser.add_argument("-o", "--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    loadgen.install_uvloop()
    report = run(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    print(
        json.dumps(
            {
                k: {kk: vv for kk, vv in v.items() if kk.startswith(("ratio", "hop"))}
                for k, v in report.items()
                if isinstance(v, dict)
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
