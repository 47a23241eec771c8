"""Local server processes for benchmarking: start on free ports, wait until ready, measure, stop.

Each server runs in its own session (process group); ``ServerProcess.stop()`` kills the whole
group and any stragglers of its process tree. Every started server is also stopped at
interpreter exit. CPU and memory are read from ``/proc`` (Linux).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

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
    remove_workdir: bool = True

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
        if self.remove_workdir:
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


def start_mlpack(
    folder: Path,
    workdir: Path,
    argv_prefix: Sequence[str] | None = None,
    env: dict[str, str] | None = None,
    ready_timeout: float = 120.0,
    settle: float = 0.0,
    args: Sequence[str] = (),
) -> ServerProcess:
    """``mlpack start folder [args]`` on free loopback ports; logs go to ``workdir/server.log``."""
    ports = free_ports(3)
    prefix = list(argv_prefix) if argv_prefix else [sys.executable, "-m", "mlpack"]
    argv = [
        *prefix,
        "start",
        str(folder),
        "--host",
        "127.0.0.1",
        "--http-port",
        str(ports[0]),
        "--grpc-port",
        str(ports[1]),
        "--metrics-port",
        str(ports[2]),
        *args,
    ]
    return spawn("mlpack", argv, workdir, ports, env, ready_timeout=ready_timeout, settle=settle)


@contextlib.contextmanager
def running(server: ServerProcess) -> Iterator[ServerProcess]:
    """Stop ``server`` when the block exits, however it exits."""
    try:
        yield server
    finally:
        server.stop()


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    local, state, inode = fields[1], fields[3], fields[9]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        inodes.add(inode)
        except OSError:
            continue
    return inodes


def pid_listening_on(port: int) -> int | None:
    """The PID of the local process listening on TCP ``port`` (None when not found or not ours)."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{entry}/fd"):
                if os.readlink(f"/proc/{entry}/fd/{fd}") in targets:
                    found.append(int(entry))
                    break
        except OSError:
            continue
    if not found:
        return None
    # Several processes may share the socket (a supervisor and its children): take the root.
    members = set(found)
    for pid in found:
        if _parent(pid) not in members:
            return pid
    return min(found)


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return int(stat[stat.rindex(b")") + 2 :].split()[1])
    except (OSError, ValueError):
        return 0
