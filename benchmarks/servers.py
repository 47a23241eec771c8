"""Start mlpack and MLServer on temp copies of a model repository, on free loopback ports.

The process helpers (spawn, stop the whole tree, /proc CPU and memory) live in
``mlpack.bench.processes`` and are re-exported here for the scenarios.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

# The process helpers live in the product (``mlpack bench`` uses them too).
from mlpack.bench import processes
from mlpack.bench.processes import (  # noqa: F401
    READY_PATH,
    ServerProcess,
    free_ports,
    process_tree,
    running,
    spawn,
    tree_cpu_seconds,
    tree_memory_mib,
    wait_ready,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


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
    extra_settings: dict[str, object] | None = None,
) -> ServerProcess:
    """Start `mlserver start` on a temp copy of `model_repo` (settings.json: free ports,
    then `extra_settings`)."""
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
    settings.update(extra_settings or {})
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
    prefix, path_env = mlpack_command(repo_root)
    args = ["--parallel-workers", str(parallel_workers)] if parallel_workers is not None else []
    return processes.start_mlpack(
        workdir / "models",
        workdir,
        argv_prefix=prefix,
        env={**path_env, **(env or {})},
        ready_timeout=ready_timeout,
        settle=settle,
        args=args,
    )
