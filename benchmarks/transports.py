"""Transports: gRPC vs REST JSON vs REST binary, mlpack and MLServer 1.7.1 side by side.

Two workloads: ``iris`` (one FP64 row through the scikit-learn LogisticRegression) and
``image`` (a UINT8 [1,224,224,3] tensor through an echo model). mlpack is measured over REST
JSON, REST binary (``Inference-Header-Content-Length``) and gRPC (raw tensors); MLServer over
the transports it supports: REST JSON and gRPC. One run per cell, servers alternating; the
table shows req/s and p50 with the ratios that matter (binary/gRPC vs JSON, mlpack/MLServer).

Usage: ``python -m benchmarks.transports [-d 5] [-c 1 32] [--only mlpack] [--mlpack-workers N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import loadgen, models, servers
from benchmarks.mlserver_env import VENV_DIR, ensure_mlserver

RESULTS = Path(__file__).resolve().parent / "results" / "transports.json"
IMAGE_SHAPE = [1, 224, 224, 3]
SERVERS = ("mlpack", "mlserver")
TRANSPORTS = {"mlpack": ("rest-json", "rest-binary", "grpc"), "mlserver": ("rest-json", "grpc")}

_MLPACK_ECHO = """
from mlpack import MLModel
from mlpack.codecs.tensors import tensor_as_ndarray
from mlpack.types import InferenceResponse, ResponseOutput


class Echo(MLModel):
    async def predict(self, payload):
        return InferenceResponse(model_name=self.name, outputs=[
            ResponseOutput(
                name=i.name, shape=i.shape, datatype=i.datatype, data=tensor_as_ndarray(i)
            )
            for i in payload.inputs])
"""
_MLSERVER_ECHO = """
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceResponse


class Echo(MLModel):
    async def predict(self, payload):
        return InferenceResponse(model_name=self.name, outputs=[
            NumpyCodec.encode_output(i.name, NumpyCodec.decode_input(i)) for i in payload.inputs])
"""


def write_echo_folder(folder: Path, server: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "models.py").write_text(_MLPACK_ECHO if server == "mlpack" else _MLSERVER_ECHO)
    (folder / "model-settings.json").write_text(
        json.dumps({"name": "echo", "implementation": "models.Echo"})
    )


# ---- request bodies -----------------------------------------------------------------------


def _tensor(workload: str) -> tuple[str, str, str, np.ndarray]:
    """(model, input name, datatype, array) of a workload."""
    if workload == "iris":
        return models.IRIS_NAME, models.IRIS_INPUT, "FP64", np.array([models.IRIS_ROW])
    image = np.random.default_rng(0).integers(0, 256, size=IMAGE_SHAPE, dtype=np.uint8)
    return "echo", "image", "UINT8", image


def rest_json_body(workload: str) -> bytes:
    _, name, datatype, array = _tensor(workload)
    body = {
        "inputs": [
            {
                "name": name,
                "shape": list(array.shape),
                "datatype": datatype,
                "data": array.reshape(-1).tolist(),
            }
        ]
    }
    return json.dumps(body, separators=(",", ":")).encode()


def rest_binary_body(workload: str) -> tuple[bytes, int]:
    """Body and JSON header length; outputs come back binary too."""
    _, name, datatype, array = _tensor(workload)
    raw = array.astype(array.dtype.newbyteorder("<")).tobytes()
    header = json.dumps(
        {
            "parameters": {"binary_data_output": True},
            "inputs": [
                {
                    "name": name,
                    "shape": list(array.shape),
                    "datatype": datatype,
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
        },
        separators=(",", ":"),
    ).encode()
    return header + raw, len(header)


def grpc_body(workload: str) -> bytes:
    """A serialized ModelInferRequest with the tensor in raw_input_contents."""
    from mlpack.proto import inference_pb2 as pb

    model, name, datatype, array = _tensor(workload)
    message = pb.ModelInferRequest(
        model_name=model,
        inputs=[
            pb.ModelInferRequest.InferInputTensor(
                name=name, datatype=datatype, shape=list(array.shape)
            )
        ],
        raw_input_contents=[array.astype(array.dtype.newbyteorder("<")).tobytes()],
    )
    serialized: bytes = message.SerializeToString()
    return serialized


def driver_and_body(
    server: servers.ServerProcess, workload: str, transport: str
) -> tuple[Any, bytes]:
    model = _tensor(workload)[0]
    url = f"{server.base_url}/v2/models/{model}/infer"
    if transport == "grpc":
        return loadgen.GrpcDriver(server.grpc_target), grpc_body(workload)
    if transport == "rest-binary":
        body, length = rest_binary_body(workload)
        driver = loadgen.HttpDriver.from_url(
            url,
            content_type="application/octet-stream",
            extra_headers=(("Inference-Header-Content-Length", str(length)),),
        )
        return driver, body
    return loadgen.HttpDriver.from_url(url), rest_json_body(workload)


# ---- the run ----------------------------------------------------------------------------


def _measure(
    server: servers.ServerProcess,
    workload: str,
    transport: str,
    concurrency: int,
    duration: float,
    warmup: float,
) -> dict[str, Any]:
    driver, body = driver_and_body(server, workload, transport)
    cpu0 = servers.tree_cpu_seconds(server.proc.pid)
    t0 = time.monotonic()
    result = asyncio.run(
        loadgen.run_load(driver, [body], concurrency=concurrency, duration=duration, warmup=warmup)
    )
    row = result.to_dict()
    row["server_cpu"] = (servers.tree_cpu_seconds(server.proc.pid) - cpu0) / (time.monotonic() - t0)
    return row


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """The ratios of the issue: fast transports vs JSON (latency, c=1) and mlpack vs MLServer."""
    out: dict[str, Any] = {}
    for key, cell in results.get("mlpack", {}).items():
        workload, transport, c = key.split("/")
        json_cell = results["mlpack"].get(f"{workload}/rest-json/{c}")
        if transport != "rest-json" and json_cell:
            out[f"mlpack {workload} {c}: json p50 / {transport} p50"] = _ratio(
                json_cell["p50_ms"], cell["p50_ms"]
            )
            out[f"mlpack {workload} {c}: {transport} rps / json rps"] = _ratio(
                cell["rps"], json_cell["rps"]
            )
        other = results.get("mlserver", {}).get(key)
        if other:
            out[f"{workload} {transport} {c}: mlpack rps / mlserver rps"] = _ratio(
                cell["rps"], other["rps"]
            )
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    names = [n for n in SERVERS if args.only in (None, n)]
    started: dict[str, servers.ServerProcess] = {}
    results: dict[str, dict[str, Any]] = {n: {} for n in names}
    with tempfile.TemporaryDirectory(prefix="bench-transports-") as tmp:
        repos = models.write_iris_folders(Path(tmp))
        for name in names:
            write_echo_folder(repos[name] / "echo", name)
        try:
            for name in names:
                if name == "mlserver":
                    server = servers.start_mlserver(
                        ensure_mlserver(args.mlserver_venv), repos[name], args.mlserver_workers
                    )
                else:
                    server = servers.start_mlpack(repos[name], args.mlpack_workers)
                started[name] = server
                print(f"{name}: ready in {server.start_s:.2f} s", flush=True)
            for workload in args.workloads:
                for c in args.concurrency:
                    for transport in ("rest-json", "rest-binary", "grpc"):
                        for name in names if c % 2 else names[::-1]:
                            if transport not in TRANSPORTS[name]:
                                continue
                            row = _measure(
                                started[name], workload, transport, c, args.duration, args.warmup
                            )
                            results[name][f"{workload}/{transport}/c{c}"] = row
                            print(
                                f"{name:8} {workload:5} {transport:11} c={c:<3} "
                                f"{row['rps']:>8,.0f} req/s  p50 {row['p50_ms']:7.2f} ms  "
                                f"p99 {row['p99_ms']:7.2f} ms  server {row['server_cpu']:.2f}  "
                                f"loadgen {row['loadgen_cpu']:.0%}  err {row['errors']}",
                                flush=True,
                            )
        finally:
            for server in started.values():
                server.stop()
    return {
        "scenario": "transports",
        "settings": vars(args)
        | {"mlserver_venv": str(args.mlserver_venv), "output": str(args.output)},
        "results": results,
        "ratios": ratios(results),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.transports", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--only", choices=SERVERS, help="benchmark one server only")
    parser.add_argument(
        "-w", "--workloads", nargs="+", choices=("iris", "image"), default=["iris", "image"]
    )
    parser.add_argument("-d", "--duration", type=float, default=5.0, help="seconds per cell (5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per cell (1)")
    parser.add_argument("-c", "--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument(
        "--mlserver-venv",
        type=Path,
        default=VENV_DIR,
        help="virtualenv holding MLServer 1.7.1 (created when missing)",
    )
    parser.add_argument(
        "--mlpack-workers",
        type=int,
        default=None,
        help="mlpack parallel_workers (default: its own default, 0)",
    )
    parser.add_argument(
        "--mlserver-workers",
        type=int,
        default=None,
        help="MLServer parallel_workers (default: its own default, 1)",
    )
    parser.add_argument("-o", "--output", type=Path, default=RESULTS)
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
    for key, value in report["ratios"].items():
        print(f"{key:60} {value:8.2f}" if value else f"{key:60}      n/a")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nwrote {args.output}")
    errors = sum(r["errors"] for cells in report["results"].values() for r in cells.values())
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
