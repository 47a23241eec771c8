"""Run ``mlpack start`` as a user would: a subprocess on free ports, cleaned up after."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from mlpack.environments.runtimes import BUILTIN_RUNTIMES
from tests.conftest import free_ports

ASSETS = Path(__file__).resolve().parents[1] / "assets"
REPO = Path(__file__).resolve().parents[2]
RUNTIMES = tuple(runtime.folder for runtime in BUILTIN_RUNTIMES)


def checkout_pythonpath(existing: str = "", runtimes: bool = True) -> str:
    """PYTHONPATH importing this checkout (and, with ``runtimes``, its built-in runtimes) first."""
    paths = [str(REPO), *(str(REPO / "runtimes" / name) for name in (RUNTIMES if runtimes else ()))]
    return os.pathsep.join([*paths, existing]).rstrip(os.pathsep)


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    metrics_port: int
    log_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        return self.process.returncode


def start_server(
    folder: Path,
    log_dir: Path,
    settings: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    wait_ready: bool = True,
    timeout: float = 60,
    args: tuple[str, ...] = (),
    launcher: tuple[str, ...] = ("-m", "mlpack"),
    runtimes_on_path: bool = True,
    wait: bool = True,
) -> RunningServer:
    """Start ``mlpack start folder`` on free ports and wait until it answers (or is ready).

    With ``runtimes_on_path=False`` the built-in runtimes are not put on PYTHONPATH: the
    server finds them as an installed mlpack does (e.g. an editable install's finder).
    """
    http_port, grpc_port, metrics_port = free_ports(3)
    if settings is not None:
        (folder / "settings.json").write_text(json.dumps(settings))
    log_path = log_dir / f"server-{http_port}.log"
    environment = {**os.environ, "OPENBLAS_NUM_THREADS": "1", **(env or {})}
    # Serve this checkout's code even when another checkout is pip-installed in editable mode.
    environment["PYTHONPATH"] = checkout_pythonpath(
        environment.get("PYTHONPATH", ""), runtimes_on_path
    )
    command = [
        sys.executable,
        *launcher,
        "start",
        str(folder),
        "--host",
        "127.0.0.1",
        "--http-port",
        str(http_port),
        "--grpc-port",
        str(grpc_port),
        "--metrics-port",
        str(metrics_port),
        *args,
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
            cwd=str(log_dir),
        )
    server = RunningServer(process, http_port, grpc_port, metrics_port, log_path)
    if not wait:  # the caller waits its own way (e.g. over TLS)
        return server
    try:
        wait_for(server, ready=wait_ready, timeout=timeout)
    except BaseException:
        server.stop(signal.SIGKILL)
        raise
    return server


def wait_for(server: RunningServer, ready: bool = True, timeout: float = 60) -> None:
    path = "/v2/health/ready" if ready else "/v2/health/live"
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with {server.process.returncode}:\n{server.log()}"
                )
            try:
                if client.get(server.url + path).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    raise TimeoutError(
        f"server not {'ready' if ready else 'live'} after {timeout}s:\n{server.log()}"
    )
