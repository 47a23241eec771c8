"""Front-ends: iris REST and gRPC at c=32, mlpack with 1 and 2 front-ends vs MLServer 1.7.1.

In the same alternating rounds (server order reversed every round) it also measures the
machine's own ceiling: one and two bare processes answering a fixed response on shared
ports (``benchmarks/ceiling.py``), so the machine's own 2-vs-1 scaling sits next to
mlpack's. And, to project to bigger machines, the CPU one request costs: front-end CPU (a
front-end serving the model in-process; and one dispatching to a worker) and worker CPU
(``parallel_workers`` 1), read from /proc per process.

Load comes from ``h2load`` (``benchmarks/h2load.py``: C, a few % of a core; gRPC success
checked on the servers' ``grpc_server_handled_total`` counters, REST over HTTP/1.1
keep-alive) when it is installed, else from the Python drivers; ``--grpc-loadgen python`` /
``--rest-loadgen python`` pick the Python drivers.

With ``--against CHECKOUT`` every selected mlpack server also runs from another checkout
(e.g. ``git archive main``) as ``NAME@against``, in the same alternating rounds, and the
report gives this checkout's req/s and front-end CPU per request over that one's.

Usage: ``python -m benchmarks.frontends [-d 5] [-r 3] [-c 32] [--against DIR]
[--transports grpc]``; JSON goes to benchmarks/results/frontends.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks import h2load, loadgen, models, servers
from benchmarks.mlserver_env import VENV_DIR, ensure_mlserver
from benchmarks.transports import grpc_body, rest_json_body
from mlpack.bench import processes

RESULTS = Path(__file__).resolve().parent / "results" / "frontends.json"
SERVERS = ("mlpack-1fe", "mlpack-2fe", "mlserver", "ceiling-1", "ceiling-2", "mlpack-1fe-w1")
CEILINGS = {"ceiling-1": 1, "ceiling-2": 2}
TRANSPORTS = ("rest", "grpc")
AGAINST = "@against"  # suffix of a server run from the ``--against`` checkout


def _cpu_by_pid(root: int) -> dict[int, float]:
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for pid in processes.process_tree(root):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        out[pid] = (int(fields[11]) + int(fields[12])) / tick
    return out


def _metrics_url(server: servers.ServerProcess) -> str | None:
    """Where the server counts its gRPC calls (None: a ceiling process counts nothing)."""
    if server.name in CEILINGS:
        return None
    return f"http://127.0.0.1:{server.metrics_port}/metrics"


def _measure(
    server: servers.ServerProcess,
    transport: str,
    concurrency: int,
    duration: float,
    grpc_loadgen: str = "h2load",
    rest_loadgen: str = "h2load",
) -> dict[str, Any]:
    before = _cpu_by_pid(server.proc.pid)
    t0 = time.monotonic()
    if transport == "rest" and rest_loadgen == "h2load":
        row: dict[str, Any] = h2load.run_http(
            f"{server.base_url}/v2/models/{models.IRIS_NAME}/infer",
            rest_json_body("iris"),
            concurrency,
            duration,
            warmup=1.0,
        )
    elif transport == "grpc" and grpc_loadgen == "h2load":
        row = h2load.run(
            server.grpc_target,
            grpc_body("iris"),
            concurrency,
            duration,
            warmup=1.0,
            metrics_url=_metrics_url(server),
        )
    else:
        if transport == "grpc":
            driver: Any = loadgen.GrpcDriver(server.grpc_target)
            body = grpc_body("iris")
        else:
            driver = loadgen.HttpDriver.from_url(
                f"{server.base_url}/v2/models/{models.IRIS_NAME}/infer"
            )
            body = rest_json_body("iris")
        result = asyncio.run(
            loadgen.run_load(driver, [body], concurrency=concurrency, duration=duration, warmup=1.0)
        )
        row = result.to_dict() | {"loadgen": "python"}
    wall = time.monotonic() - t0
    after = _cpu_by_pid(server.proc.pid)
    used = {pid: after[pid] - before.get(pid, 0.0) for pid in after}
    root = used.pop(server.proc.pid, 0.0)
    # In cores (1.0: one core busy): the top process, and everything below it.
    row["cpu_root"] = root / wall
    row["cpu_children"] = sum(used.values()) / wall
    row["server_cpu"] = row["cpu_root"] + row["cpu_children"]
    return row


def _frontends_ready(server: servers.ServerProcess, count: int) -> bool:
    try:
        text = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return False
    return all(f'frontend_ready{{frontend="{i}"}} 1.0' in text for i in range(count))


def _start(
    name: str, repos: dict[str, Path], mlserver_venv: Path, against: Path | None = None
) -> servers.ServerProcess:
    if name == "mlserver":
        return servers.start_mlserver(ensure_mlserver(mlserver_venv), repos["mlserver"])
    base = name.removesuffix(AGAINST)
    checkout = servers.REPO_ROOT
    if base != name:
        if against is None:
            raise ValueError(f"{name}: no --against checkout")
        checkout = against
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{base}-"))
    prefix, env = servers.mlpack_command(checkout)
    if name in CEILINGS:
        ports = processes.free_ports(3)
        argv = [
            sys.executable,
            "-m",
            "benchmarks.ceiling",
            "--http-port",
            str(ports[0]),
            "--grpc-port",
            str(ports[1]),
            "--processes",
            str(CEILINGS[name]),
        ]
        return processes.spawn(name, argv, workdir, ports, env)
    args = {
        "mlpack-1fe": ["--frontends", "1"],
        "mlpack-2fe": ["--frontends", "2"],
        "mlpack-1fe-w1": ["--frontends", "1", "--parallel-workers", "1"],
    }[base]
    server = processes.start_mlpack(
        repos["mlpack"], workdir, argv_prefix=prefix, env=env, settle=1.0, args=args
    )
    server.name = name
    if base == "mlpack-2fe":
        deadline = time.monotonic() + 60
        while not _frontends_ready(server, 2):
            if time.monotonic() > deadline:
                raise TimeoutError(f"front-ends not ready:\n{server.log_tail()}")
            time.sleep(0.1)
    return server


def run(args: argparse.Namespace) -> dict[str, Any]:
    names = [n for n in SERVERS if not args.only or n in args.only]
    if args.against is not None:
        names += [f"{n}{AGAINST}" for n in names if n.startswith("mlpack-")]
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {n: {} for n in names}
    started: dict[str, servers.ServerProcess] = {}
    with tempfile.TemporaryDirectory(prefix="bench-frontends-") as tmp:
        repos = models.write_iris_folders(Path(tmp))
        try:
            for name in names:
                started[name] = _start(name, repos, args.mlserver_venv, args.against)
                print(f"{name}: ready in {started[name].start_s:.2f} s", flush=True)
            for round_ in range(args.repeats):
                order = names if round_ % 2 == 0 else names[::-1]
                for c in args.concurrency:
                    for transport in args.transports:
                        for name in order:
                            row = _measure(
                                started[name],
                                transport,
                                c,
                                args.duration,
                                args.grpc_loadgen,
                                args.rest_loadgen,
                            )
                            raw[name].setdefault(f"{transport}/c{c}", []).append(row)
                            print(
                                f"round {round_ + 1} {name:14} {transport:4} c={c:<3} "
                                f"{row['rps']:>8,.0f} req/s  p50 {row['p50_ms']:6.2f} ms  "
                                f"cpu top {row['cpu_root']:.2f} below {row['cpu_children']:.2f}"
                                f"  loadgen {row['loadgen_cpu']:.0%}  err {row['errors']}",
                                flush=True,
                            )
        finally:
            for server in started.values():
                server.stop()
    return report(args, raw)


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in rows))


def _us_per_request(row: dict[str, Any]) -> float:
    """Server CPU (all its processes) per request, in microseconds."""
    return 1e6 * (row["cpu_root"] + row["cpu_children"]) / row["rps"] if row["rps"] else 0.0


def _against_ratios(raw: dict[str, Any]) -> dict[str, float]:
    """This checkout over ``--against``'s, per server and cell: medians of the per-round
    ratios (each round measures both back to back, so the machine's load cancels out)."""
    ratios: dict[str, float] = {}
    for name, cells in raw.items():
        other = raw.get(f"{name}{AGAINST}")
        if AGAINST in name or other is None:
            continue
        for cell, rows in cells.items():
            pairs = list(zip(rows, other.get(cell, []), strict=False))
            if not pairs or not all(a["rps"] and b["rps"] for a, b in pairs):
                continue
            ratios[f"{cell}: {name} req/s / against"] = statistics.median(
                a["rps"] / b["rps"] for a, b in pairs
            )
            ratios[f"{cell}: {name} server CPU us/request / against"] = statistics.median(
                _us_per_request(a) / _us_per_request(b) for a, b in pairs
            )
    return ratios


def report(args: argparse.Namespace, raw: dict[str, Any]) -> dict[str, Any]:
    keys = ("rps", "p50_ms", "p99_ms", "cpu_root", "cpu_children", "loadgen_cpu")
    results = {
        name: {
            cell: {k: _median(rows, k) for k in keys} | {"errors": sum(r["errors"] for r in rows)}
            for cell, rows in cells.items()
        }
        for name, cells in raw.items()
    }
    ratios: dict[str, float] = {}
    costs: dict[str, float] = {}
    ratios.update(_against_ratios(raw))
    for cell in {c for cells in results.values() for c in cells}:

        def rps(name: str, cell: str = cell) -> float | None:
            value = results.get(name, {}).get(cell, {}).get("rps")
            return float(value) if value else None

        one, two, peer, ceiling_1, ceiling = (
            rps("mlpack-1fe"),
            rps("mlpack-2fe"),
            rps("mlserver"),
            rps("ceiling-1"),
            rps("ceiling-2"),
        )
        if one and two:
            ratios[f"{cell}: 2 front-ends / 1"] = two / one
        if ceiling_1 and ceiling:
            ratios[f"{cell}: machine ceiling 2 / 1"] = ceiling / ceiling_1
        if one and two and ceiling_1 and ceiling:
            # How much of the machine's own 2-vs-1 gain mlpack's second front-end gets.
            ratios[f"{cell}: scaling efficiency (2fe/1fe) / (ceiling 2/1)"] = (two / one) / (
                ceiling / ceiling_1
            )
        if two and ceiling:
            ratios[f"{cell}: 2 front-ends / machine ceiling"] = two / ceiling
        if two and peer:
            ratios[f"{cell}: 2 front-ends / MLServer"] = two / peer
        if one and peer:
            ratios[f"{cell}: 1 front-end / MLServer"] = one / peer
        # CPU seconds per request, from cores busy / requests per second.
        inproc = results.get("mlpack-1fe", {}).get(cell)
        if inproc and inproc["rps"]:
            costs[f"{cell}: front-end with in-process model, us/request"] = (
                1e6 * (inproc["cpu_root"] + inproc["cpu_children"]) / inproc["rps"]
            )
        pooled = results.get("mlpack-1fe-w1", {}).get(cell)
        if pooled and pooled["rps"]:
            costs[f"{cell}: front-end dispatching to a worker, us/request"] = (
                1e6 * pooled["cpu_root"] / pooled["rps"]
            )
            costs[f"{cell}: worker, us/request"] = 1e6 * pooled["cpu_children"] / pooled["rps"]
    return {
        "scenario": "frontends",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "loadavg_at_end": os.getloadavg()},
        "settings": {
            "duration_s": args.duration,
            "repeats": args.repeats,
            "grpc_loadgen": args.grpc_loadgen,
            "rest_loadgen": args.rest_loadgen,
            "against": str(args.against) if args.against else None,
        },
        "results": results,
        "ratios": dict(sorted(ratios.items())),
        "cpu_per_request": dict(sorted(costs.items())),
        "runs": raw,
    }


def render(report: dict[str, Any]) -> str:
    lines = ["| server | cell | req/s | p50 ms | CPU top / below (cores) | loadgen CPU | errors |"]
    lines.append("|---|---|---:|---:|---:|---:|---:|")
    for name, cells in report["results"].items():
        for cell, row in sorted(cells.items()):
            lines.append(
                f"| {name} | {cell} | {row['rps']:,.0f} | {row['p50_ms']:.2f} | "
                f"{row['cpu_root']:.2f} / {row['cpu_children']:.2f} | "
                f"{row['loadgen_cpu']:.0%} | {row['errors']} |"
            )
    lines.append("")
    lines += [f"- {k}: {v:.2f}" for k, v in report["ratios"].items()]
    lines += [f"- {k}: {v:.0f}" for k, v in report["cpu_per_request"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.frontends", description=__doc__.splitlines()[0]
    )
    parser.add_argument("-d", "--duration", type=float, default=5.0, help="seconds per cell")
    parser.add_argument("-r", "--repeats", type=int, default=3, help="rounds (medians)")
    parser.add_argument("-c", "--concurrency", type=int, nargs="+", default=[32])
    parser.add_argument("--only", nargs="+", choices=SERVERS, help="these servers only")
    parser.add_argument(
        "--grpc-loadgen",
        choices=("h2load", "python"),
        default="h2load" if h2load.available() else "python",
        help="gRPC load generator (default: h2load when installed)",
    )
    parser.add_argument(
        "--rest-loadgen",
        choices=("h2load", "python"),
        default="h2load" if h2load.available() else "python",
        help="REST load generator (default: h2load --h1 when installed)",
    )
    parser.add_argument(
        "--against",
        type=Path,
        help="another checkout (e.g. `git archive main`): its mlpack servers run side by side",
    )
    parser.add_argument(
        "--transports", nargs="+", choices=TRANSPORTS, default=list(TRANSPORTS), help="cells"
    )
    parser.add_argument("--mlserver-venv", type=Path, default=VENV_DIR)
    parser.add_argument("-o", "--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    loadgen.install_uvloop()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        result = run(args)
    except KeyboardInterrupt:
        print("interrupted: servers stopped", file=sys.stderr)
        return 130
    print()
    print(render(result))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
