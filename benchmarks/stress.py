"""Under stress: mlpack against MLServer 1.7.1, side by side in one run.

Four scenarios, each server with its own defaults unless said:

- burst: 20 concurrent requests to a model whose plain ``predict`` sleeps 0.25 s; when did the
  answers arrive (first, median, last, seconds after the burst)? Answers released as they
  are computed spread out evenly; bunched ones all arrive at the end.
- overload: an open-loop client offers twice the capacity of a model that sleeps 10 ms
  (one at a time) for ``--duration`` seconds; mlpack runs with ``max_queue_size`` 10 (a queue
  wait of at most ~0.1 s). Reports answered, refused (503) and failed requests and the p50/p99
  of the answered ones.
- sigterm: 12 requests of 0.5 s in flight, then SIGTERM; how many were answered 200?
- big body: one 200 MB JSON body; peak RSS of the server's process tree over its idle RSS,
  and the status it answered.

Usage: ``python -m benchmarks.stress [--only mlpack|mlserver] [-d 10]``; JSON goes to
``benchmarks/results/stress.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import servers
from benchmarks.loadgen import percentile
from benchmarks.mlserver_env import ensure_mlserver

RESULTS = Path(__file__).resolve().parent / "results" / "stress.json"
SERVERS = ("mlpack", "mlserver")
MODEL = "sleeper"
RSS_CAP_MIB = 6 * 1024  # a server's tree beyond this is stopped (the machine is shared)

_MLPACK_MODEL = """
import time
from mlpack import MLModel
from mlpack.types import InferenceResponse, ResponseOutput

class Sleeper(MLModel):
    def predict(self, payload):
        seconds = float(payload.inputs[0].data[0])
        time.sleep(seconds)
        return InferenceResponse(model_name=self.name, outputs=[
            ResponseOutput(name="slept", shape=[1], datatype="FP64", data=[seconds])])
"""
_MLSERVER_MODEL = """
import time
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceResponse, ResponseOutput

class Sleeper(MLModel):
    async def predict(self, payload):
        seconds = float(NumpyCodec.decode_input(payload.inputs[0]).reshape(-1)[0])
        time.sleep(seconds)  # blocking, like a plain-function model
        return InferenceResponse(model_name=self.name, outputs=[
            ResponseOutput(name="slept", shape=[1], datatype="FP64", data=[seconds])])
"""


def write_models(root: Path, queue_limit: int | None) -> dict[str, Path]:
    """``root/<server>/sleeper`` for each server; mlpack's with ``max_queue_size``."""
    folders = {}
    for server, source in (("mlpack", _MLPACK_MODEL), ("mlserver", _MLSERVER_MODEL)):
        folder = root / server / MODEL
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "models.py").write_text(source)
        settings: dict[str, Any] = {"name": MODEL, "implementation": "models.Sleeper"}
        if server == "mlpack" and queue_limit is not None:
            settings["max_queue_size"] = queue_limit
        (folder / "model-settings.json").write_text(json.dumps(settings))
        folders[server] = root / server
    return folders


def body(seconds: float) -> bytes:
    return json.dumps(
        {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [seconds]}]}
    ).encode()


# -- a small HTTP/1.1 client (one request per connection is enough here) ---------------------
async def post(port: int, payload: bytes, timeout: float = 120.0) -> int:
    """POST to the model; the status, or 0 when the connection failed or closed early."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(
                    f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: x\r\n"
                    "Content-Type: application/json\r\n"
                    f"Content-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                return status
            finally:
                writer.close()
    except (
        OSError,
        asyncio.IncompleteReadError,
        asyncio.LimitOverrunError,
        TimeoutError,
        ValueError,
    ):
        return 0


# -- scenarios -------------------------------------------------------------------------------
async def burst(port: int, count: int = 20, seconds: float = 0.25) -> dict[str, Any]:
    start = time.monotonic()
    arrivals: list[float] = []

    async def one() -> int:
        status = await post(port, body(seconds))
        arrivals.append(time.monotonic() - start)
        return status

    statuses = await asyncio.gather(*(one() for _ in range(count)))
    arrivals.sort()
    return {
        "ok": statuses.count(200),
        "count": count,
        "compute_s": seconds,
        "first_s": arrivals[0],
        "median_s": statistics.median(arrivals),
        "last_s": arrivals[-1],
    }


async def overload(port: int, duration: float, seconds: float = 0.01) -> dict[str, Any]:
    """Open loop at twice the model's capacity (1 / ``seconds`` requests per second)."""
    rate = 2.0 / seconds
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    tasks: set[asyncio.Task[None]] = set()
    payload = body(seconds)

    async def one() -> None:
        sent = time.monotonic()
        status = await post(port, payload, timeout=60.0)
        statuses[status] = statuses.get(status, 0) + 1
        if status == 200:
            latencies.append(time.monotonic() - sent)

    start = time.monotonic()
    sent = 0
    while time.monotonic() - start < duration:
        due = int((time.monotonic() - start) * rate)
        while sent < due and len(tasks) < 2000:  # bounded: at most 2,000 open requests
            task = asyncio.ensure_future(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        await asyncio.sleep(0.002)
    if tasks:
        await asyncio.gather(*tasks)
    latencies.sort()
    return {
        "offered_rps": rate,
        "sent": sent,
        "ok": statuses.get(200, 0),
        "refused_503": statuses.get(503, 0),
        "failed": sum(n for status, n in statuses.items() if status not in (200, 503)),
        "p50_ms": percentile(latencies, 50) * 1000 if latencies else None,
        "p99_ms": percentile(latencies, 99) * 1000 if latencies else None,
    }


async def sigterm(
    server: servers.ServerProcess, count: int = 12, seconds: float = 0.5
) -> dict[str, Any]:
    calls = [asyncio.ensure_future(post(server.http_port, body(seconds))) for _ in range(count)]
    await asyncio.sleep(seconds / 2)  # every request sent, the first one computing
    os.killpg(server.proc.pid, signal.SIGTERM)
    statuses = await asyncio.gather(*calls)
    return {
        "count": count,
        "ok": statuses.count(200),
        "lost": count - statuses.count(200),
        "statuses": sorted(set(statuses)),
    }


def big_body(server: servers.ServerProcess, size_mb: int = 200) -> dict[str, Any]:
    idle = servers.tree_memory_mib(server.proc.pid)[0]
    peak = [idle]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            rss = servers.tree_memory_mib(server.proc.pid)[0]
            peak[0] = max(peak[0], rss)
            if rss > RSS_CAP_MIB:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(server.proc.pid, signal.SIGKILL)
                return
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    values = size_mb * 1024 * 1024 // 4  # "0.5," is 4 bytes
    head = b'{"inputs":[{"name":"x","datatype":"FP64","shape":[%d],"data":[' % values
    status = 0
    try:
        with socket.create_connection(("127.0.0.1", server.http_port), timeout=300) as sock:
            length = len(head) + values * 4 - 1 + len(b"]}]}")
            sock.sendall(
                f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: x\r\nContent-Type: "
                f"application/json\r\nContent-Length: {length}\r\n\r\n".encode()
                + head
            )
            chunk = b"0.5," * (256 * 1024)
            try:
                remaining = values
                while remaining > len(chunk) // 4:
                    sock.sendall(chunk)
                    remaining -= len(chunk) // 4
                sock.sendall(b"0.5," * (remaining - 1) + b"0.5]}]}")
            except OSError:
                pass  # the server answered early and hung up
            answer = b""
            with contextlib.suppress(OSError):
                while len(answer) < 64 and (data := sock.recv(65536)):
                    answer += data
            if answer.startswith(b"HTTP/1.1 "):
                status = int(answer.split(b" ", 2)[1])
        time.sleep(1.0)  # let a server that keeps decoding show it
    finally:
        done.set()
        sampler.join()
    return {
        "size_mb": size_mb,
        "status": status,
        "idle_rss_mib": idle,
        "peak_rss_mib": peak[0],
        "peak_over_idle": peak[0] / idle if idle else None,
    }


# -- driver ------------------------------------------------------------------------------------
def _start(name: str, folder: Path, mlserver_exe: Path | None) -> servers.ServerProcess:
    if name == "mlpack":
        return servers.start_mlpack(folder)
    assert mlserver_exe is not None
    return servers.start_mlserver(mlserver_exe, folder)


def run(names: tuple[str, ...], duration: float) -> dict[str, Any]:
    mlserver_exe = ensure_mlserver() if "mlserver" in names else None
    results: dict[str, Any] = {name: {} for name in names}
    with tempfile.TemporaryDirectory(prefix="bench-stress-") as tmp:
        plain = write_models(Path(tmp) / "plain", None)
        limited = write_models(Path(tmp) / "limited", 10)
        for name in names:
            scenarios: list[tuple[str, Path, Callable[[servers.ServerProcess], Any]]] = [
                ("burst", plain[name], lambda s: asyncio.run(burst(s.http_port))),
                ("overload", limited[name], lambda s: asyncio.run(overload(s.http_port, duration))),
                ("big_body", plain[name], big_body),
                ("sigterm", plain[name], lambda s: asyncio.run(sigterm(s))),
            ]
            for scenario, folder, measure in scenarios:
                server = _start(name, folder, mlserver_exe)
                with servers.running(server):
                    results[name][scenario] = measure(server)
                print(f"{name:8} {scenario:9} {results[name][scenario]}", flush=True)
    return results


def table(results: dict[str, Any]) -> str:
    rows = [
        (
            "burst: first / median / last answer (s)",
            "burst",
            lambda r: f"{r['first_s']:.2f} / {r['median_s']:.2f} / {r['last_s']:.2f}",
        ),
        (
            "overload 2x: ok / 503 / failed",
            "overload",
            lambda r: f"{r['ok']} / {r['refused_503']} / {r['failed']}",
        ),
        (
            "overload 2x: p50 / p99 of ok (ms)",
            "overload",
            lambda r: f"{r['p50_ms'] or 0:.0f} / {r['p99_ms'] or 0:.0f}",
        ),
        ("SIGTERM, 12 in flight: answered 200", "sigterm", lambda r: f"{r['ok']} of {r['count']}"),
        (
            "200 MB body: status, peak/idle RSS",
            "big_body",
            lambda r: (
                f"{r['status'] or 'none'}, {r['peak_rss_mib']:.0f}/{r['idle_rss_mib']:.0f} MiB"
                f" ({r['peak_over_idle']:.2f}x)"
            ),
        ),
    ]
    names = list(results)
    lines = ["| scenario | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, key, render in rows:
        cells = []
        for name in names:
            try:
                cells.append(render(results[name][key]))
            except (KeyError, TypeError):
                cells.append("n/a")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=SERVERS)
    parser.add_argument("-d", "--duration", type=float, default=10.0, help="overload seconds")
    parser.add_argument("-o", "--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    names = (args.only,) if args.only else SERVERS
    results = run(names, args.duration)
    print(table(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str))
    lost = results.get("mlpack", {}).get("sigterm", {}).get("lost", 0)
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
