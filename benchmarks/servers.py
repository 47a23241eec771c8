"""Start and stop the servers under test on free loopback ports; measure start time and idle memory.

Each server runs in its own session (process group); `ServerProcess.stop()` kills the whole group
and any stragglers of its process tree. Every started server is also stopped at interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_PATH = "/v2/health/ready"
_LIVE: set[ServerProcess] = set()


def free_ports(n: int = 3, host: str = "127.0.0.1") -> list[int]:
    """Return `n` distinct free TCP ports on `host` (all bound at once, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# --------------------------------------------------------------------------- /proc


def process_tree(root_pid: int) -> list[int]:
    """PIDs of `root_pid` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces and parens: fields start after the last ')'.
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def _status_kib(pid: int, field: bytes, path: str = "status") -> int:
    try:
        with open(f"/proc/{pid}/{path}", "rb") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def tree_memory_mib(root_pid: int) -> tuple[float, float]:
    """(RSS, PSS) in MiB summed over the process tree; PSS shares pages fairly between processes."""
    pids = process_tree(root_pid)
    rss = sum(_status_kib(p, b"VmRSS:") for p in pids)
    pss = sum(_status_kib(p, b"Pss:", "smaps_rollup") for p in pids)
    return rss / 1024, pss / 1024


def tree_cpu_seconds(root_pid: int) -> float:
    """User + system CPU seconds used so far by the live processes of the tree."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in process_tree(root_pid):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


# --------------------------------------------------------------------------- processes


@dataclasses.dataclass(eq=False)
class ServerProcess:
    """A running server: its ports, its process and what its start cost."""

    name: str
    proc: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int
    metrics_port: int
    workdir: Path
    log_path: Path
    start_s: float = 0.0
    idle_rss_mib: float = 0.0
    idle_pss_mib: float = 0.0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the process group, then SIGKILL whatever of the tree is left."""
        _LIVE.discard(self)
        if self.proc.poll() is None:
            pids = process_tree(self.proc.pid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            for pid in pids:  # children that left the group (setsid) still belong to us
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
            _wait_gone(pids, timeout=5.0)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _wait_gone(pids: list[int], timeout: float) -> None:
    """Killed processes take a moment to exit: wait (bounded) until none is running."""
    deadline = time.monotonic() + timeout
    while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop(timeout=3)


def _http_ready(port: int, timeout: float = 1.0) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", READY_PATH)
        return 200 <= conn.getresponse().status < 300
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def wait_ready(server: ServerProcess, timeout: float = 120.0, interval: float = 0.02) -> float:
    """Poll `GET /v2/health/ready` until it answers 2xx; return the `time.monotonic()` it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with code {server.proc.returncode} before becoming ready:\n"
                f"{server.log_tail()}"
            )
        if _http_ready(server.http_port):
            return time.monotonic()
        time.sleep(interval)
    raise TimeoutError(f"{server.name} not ready after {timeout:.0f} s:\n{server.log_tail()}")


def _server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # Spinning BLAS threads would steal the second core from the load generator.
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.update(extra or {})
    return env


def spawn(
    name: str,
    argv: Sequence[str],
    workdir: Path,
    ports: Sequence[int],
    env: dict[str, str] | None = None,
    ready_timeout: float = 120.0,
    settle: float = 1.0,
) -> ServerProcess:
    """Start `argv` in its own session, wait until ready, then record start time and idle memory."""
    log_path = workdir / "server.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed right after Popen (child keeps its copy)
    try:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            list(argv),
            cwd=workdir,
            env=_server_env(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()
    server = ServerProcess(name, proc, ports[0], ports[1], ports[2], workdir, log_path)
    _LIVE.add(server)
    try:
        server.start_s = wait_ready(server, ready_timeout) - t0
        if settle > 0:
            time.sleep(settle)  # let lazily started workers settle before measuring idle memory
        server.idle_rss_mib, server.idle_pss_mib = tree_memory_mib(proc.pid)
    except BaseException:
        server.stop(timeout=3)
        raise
    return server


def _copy_repository(model_repo: Path, prefix: str) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{prefix}-"))
    shutil.copytree(model_repo, workdir / "models")
    return workdir


def start_mlserver(
    mlserver_exe: Path,
    model_repo: Path,
    parallel_workers: int | None = None,
    ready_timeout: float = 120.0,
    settle: float = 1.0,
) -> ServerProcess:
    """Start `mlserver start` on a copy of `model_repo` with a settings.json holding free ports."""
    workdir = _copy_repository(model_repo, "mlserver")
    ports = free_ports(3)
    settings: dict[str, object] = {
        "host": "127.0.0.1",
        "http_port": ports[0],
        "grpc_port": ports[1],
        "metrics_port": ports[2],
        "debug": False,
    }
    if parallel_workers is not None:
        settings["parallel_workers"] = parallel_workers
    models = workdir / "models"
    (models / "settings.json").write_text(json.dumps(settings, indent=2))
    argv = [str(mlserver_exe), "start", str(models)]
    return spawn("mlserver", argv, workdir, ports, ready_timeout=ready_timeout, settle=settle)


def mlpack_command(repo_root: Path = REPO_ROOT) -> tuple[list[str], dict[str, str]]:
    """How to run the mlpack CLI of `repo_root`: argv prefix and extra environment."""
    # PYTHONPATH wins over an editable install pointing at another checkout.
    paths = [str(repo_root), str(repo_root / "runtimes" / "sklearn")]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    return [sys.executable, "-m", "mlpack"], {"PYTHONPATH": os.pathsep.join(paths)}


def start_mlpack(
    model_repo: Path,
    parallel_workers: int | None = None,
    repo_root: Path = REPO_ROOT,
    env: dict[str, str] | None = None,
    ready_timeout: float = 120.0,
    settle: float = 1.0,
) -> ServerProcess:
    """Start `mlpack start` on a temp copy of `model_repo` on free ports."""
    workdir = _copy_repository(model_repo, "mlpack")
    ports = free_ports(3)
    models = workdir / "models"
    prefix, path_env = mlpack_command(repo_root)
    argv = [
        *prefix,
        "start",
        str(models),
        "--host",
        "127.0.0.1",
        "--http-port",
        str(ports[0]),
        "--grpc-port",
        str(ports[1]),
        "--metrics-port",
        str(ports[2]),
    ]
    if parallel_workers is not None:
        argv += ["--parallel-workers", str(parallel_workers)]
    run_env = {**path_env, **(env or {})}
    return spawn(
        "mlpack", argv, workdir, ports, run_env, ready_timeout=ready_timeout, settle=settle
    )


@contextlib.contextmanager
def running(server: ServerProcess) -> Iterator[ServerProcess]:
    """Stop `server` when the block exits, however it exits."""
    try:
        yield server
    finally:
        server.stop()
