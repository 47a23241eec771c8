"""Models that bring their own environment run in worker processes of that environment's Python.

Each distinct environment gets its own ``WorkerPool`` (``max(1, parallel_workers)``
processes), started when its first model loads; models without an environment keep
using the shared pool (or the server process). The pools' workers are ordinary
``run_worker`` processes, only started with another interpreter (``WorkerPool``'s
``start_process`` hook) rather than through ``multiprocessing`` (whose spawn start
would replace the child's ``sys.path`` with the server's, hiding the environment).

How the server's code reaches a Python that has no mlpack installed:

* ``PYTHONPATH`` holds only a small "shim" folder with symlinks to the server's
  ``mlpack`` (and built-in runtime) packages, so ``import mlpack`` works and nothing
  else of the server's shadows the environment;
* the environment's own ``site-packages`` come next (normal ``site`` processing), so
  its packages win;
* the server's import locations (its ``site-packages``, minus its standard library) are
  appended last, before ``mlpack`` is imported, so mlpack's own dependencies (pydantic,
  numpy, ...) are found when the environment lacks them.

So an environment must have the server's Python minor version (checked when it is
resolved) and, for any package it shares with mlpack (e.g. numpy), a version mlpack
supports.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from ...environments import (
    DEFAULT_LIMITS,
    Environment,
    ExtractionLimits,
    find_python,
    unpack_environment,
)
from ...environments.build import build_conda_environment, build_requirements_environment
from ...environments.files import (
    EnvironmentChoice,
    choose_environment,
)
from ...environments.requirements import satisfied_by_server
from ...environments.runtimes import runtime_packages
from ...errors import InvalidEnvironment
from ...settings import ModelSettings
from ...types import MetadataModelResponse
from .pool import (
    DEFAULT_POOL_LIMITS,
    DeferredWorkerRunner,
    PoolLimits,
    WorkerPool,
    WorkerRunner,
)


@dataclass(frozen=True)
class OwnPool:
    """A model's own (or its named group's) pool inside its environment."""

    name: str
    size: int
    zygote: bool


logger = logging.getLogger("mlpack.engine")

_BOOT = (
    "import json, sys; sys.path.extend(json.loads(sys.argv[1])); "
    "from mlpack.engine.workers.interpreters import child_main; "
    "child_main(int(sys.argv[2]), int(sys.argv[3]))"
)
_ZYGOTE_BOOT = (
    "import json, sys; sys.path.extend(json.loads(sys.argv[1])); "
    "from mlpack.engine.workers.zygote import zygote_main; zygote_main(int(sys.argv[2]))"
)
# Top-level packages of the server that a worker needs: mlpack and built-in runtimes.
_SHIMMED = ("mlpack", *runtime_packages())


def worker_command(python: Path, shim_root: Path) -> tuple[list[str], dict[str, str]]:
    """The command and environment that start ``python`` with the server's mlpack importable."""
    shim = server_shim(shim_root)
    env = {**os.environ, "PYTHONPATH": str(shim), "PYTHONNOUSERSITE": "1"}
    return [str(python), "-c", _BOOT, json.dumps(server_fallback_paths())], env


def server_shim(shim_root: Path) -> Path:
    """A folder holding only symlinks to the server's own top-level packages."""
    import importlib.util

    targets: dict[str, str] = {}
    for name in _SHIMMED:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            targets[name] = str(Path(next(iter(spec.submodule_search_locations))).resolve())
    key = hashlib.sha256(json.dumps(targets, sort_keys=True).encode()).hexdigest()[:16]
    shim = shim_root / f".server-{key}"
    if not shim.is_dir():
        shim_root.mkdir(parents=True, exist_ok=True)
        staging = shim_root / f".server-{key}.{os.getpid()}"
        staging.mkdir(exist_ok=True)
        for name, target in targets.items():
            link = staging / name
            if not link.is_symlink():
                link.symlink_to(target, target_is_directory=True)
        try:
            os.rename(staging, shim)
        except OSError:  # another process made it first
            for link in staging.iterdir():
                link.unlink()
            staging.rmdir()
    return shim


def server_fallback_paths() -> list[str]:
    """The server's import locations, minus its standard library (the worker has its own)."""
    stdlib = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib")}
    paths = []
    for entry in sys.path:
        if not entry or not os.path.isdir(entry):
            continue
        real = os.path.realpath(entry)
        in_stdlib = any(real == s or real.startswith(s + os.sep) for s in stdlib)
        if in_stdlib and "-packages" not in real:
            continue
        paths.append(real)
    return paths


class _PopenWorker:
    """A ``subprocess.Popen`` with the bits of ``multiprocessing.Process`` the pool uses."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def exitcode(self) -> int | None:
        return self._popen.poll()

    def is_alive(self) -> bool:
        return self._popen.poll() is None

    def join(self, timeout: float | None = None) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(timeout)

    def kill(self) -> None:
        self._popen.kill()


def environment_pool(
    environment: Environment,
    size: int,
    shim_root: Path,
    stop_timeout: float,
    limits: PoolLimits = DEFAULT_POOL_LIMITS,
) -> WorkerPool:
    """A ``WorkerPool`` whose workers run ``environment``'s Python."""
    command, env = worker_command(environment.python, shim_root)

    def start(child_end: socket.socket, worker_id: int) -> _PopenWorker:
        fd = child_end.fileno()
        popen = subprocess.Popen(
            [*command, str(fd), str(worker_id)],
            env=env,
            pass_fds=(fd,),
            stdin=subprocess.DEVNULL,
        )
        return _PopenWorker(popen)

    return WorkerPool(size, stop_timeout=stop_timeout, start_process=start, **limits.as_kwargs())


def environment_zygote_pool(
    environment: Environment,
    size: int,
    shim_root: Path,
    stop_timeout: float,
    limits: PoolLimits = DEFAULT_POOL_LIMITS,
) -> WorkerPool:
    """A pool whose zygote (and so every worker forked from it) runs ``environment``'s Python."""
    from .zygote_pool import ZygotePool

    command, env = worker_command(environment.python, shim_root)
    command[2] = _ZYGOTE_BOOT

    def start(child_end: socket.socket) -> _PopenWorker:
        fd = child_end.fileno()
        popen = subprocess.Popen(
            [*command, str(fd)], env=env, pass_fds=(fd,), stdin=subprocess.DEVNULL
        )
        return _PopenWorker(popen)

    return ZygotePool(size, start, stop_timeout=stop_timeout, **limits.as_kwargs())


def child_main(fd: int, worker_id: int) -> None:
    """Entry point in the environment's Python: the ordinary worker loop on the inherited socket."""
    from .worker import run_worker

    run_worker(socket.socket(fileno=fd), worker_id)


class EnvironmentPools:
    """One worker pool per environment, started on first use and closed with the server.

    Parameters:
        environments_dir: where tarballs are unpacked, environments built (and the server
            shim lives).
        size: workers per environment.
        stop_timeout: how long closing waits for workers.
        build: build environments from requirements / conda files (False: such a model
            fails to load, saying how to pack its environment instead).
        limits: bounds on what a tarball may unpack to.
        pool_limits: queue bound, health pings, recycling and restart backoff of each pool.
    """

    def __init__(
        self,
        environments_dir: Path,
        size: int = 1,
        stop_timeout: float = 5.0,
        limits: ExtractionLimits = DEFAULT_LIMITS,
        pool_limits: PoolLimits = DEFAULT_POOL_LIMITS,
        build: bool = True,
    ) -> None:
        self.pool_limits = pool_limits
        self.environments_dir = environments_dir
        self.limits = limits
        self.size = max(1, size)
        self.stop_timeout = stop_timeout
        self.build = build
        # (environment folder, own pool name or None for the environment's shared pool)
        self._pools: dict[tuple[Path, str | None], WorkerPool] = {}
        self._lock = asyncio.Lock()

    def pools(self) -> list[tuple[str, WorkerPool]]:
        """Each started environment's pool, named by its folder (and own pool; for gauges)."""
        return [
            (root.name if own is None else f"{root.name}/{own}", pool)
            for (root, own), pool in self._pools.items()
        ]

    async def pool_for(self, settings: ModelSettings, own: OwnPool | None = None) -> WorkerPool:
        """The started pool for ``settings``' environment (unpacking or building it first).

        ``own``: the model's own (or named group's) pool inside that environment, with its
        own size and zygote; None: the environment's shared pool.
        """
        environment = await asyncio.to_thread(self.environment_for, settings)
        key = (environment.root, None if own is None else own.name)
        async with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                make = environment_pool
                size = self.size
                if own is not None:
                    size = own.size
                    make = environment_zygote_pool if own.zygote else environment_pool
                pool = make(
                    environment, size, self.environments_dir, self.stop_timeout, self.pool_limits
                )
                await pool.start()
                self._pools[key] = pool
            return pool

    def environment_for(self, settings: ModelSettings) -> Environment:
        """The ready environment of ``settings`` by the one rule (blocking: unpacks, builds)."""
        from ...environments import check_python_version

        folder = Path(settings.folder) if settings.folder else Path.cwd()
        parameters = settings.parameters
        choice = choose_environment(
            folder,
            parameters.environment_tarball,
            parameters.environment_path,
            parameters.mlflow_environment,
        )
        if choice is None:
            raise InvalidEnvironment(f"model '{settings.name}' names no environment")
        logger.info("model '%s' uses environment %s", settings.name, choice.describe())
        environment = self._realise(settings.name, choice)
        check_python_version(environment.python)
        return environment

    def _realise(self, name: str, choice: EnvironmentChoice) -> Environment:
        if choice.kind == "path":
            if not choice.source.is_dir():
                raise InvalidEnvironment(f"environment_path {choice.source} is not a folder")
            return Environment(choice.source, find_python(choice.source))
        if choice.kind == "tarball":
            return unpack_environment(choice.source, self.environments_dir, limits=self.limits)
        if not self.build:
            raise InvalidEnvironment(
                f"model '{name}' needs an environment built from {choice.source}, and building "
                f"environments is off (--no-build-envs): pack it (mlpack env pack "
                f"{choice.source.parent}) and ship environment.tar.gz, or start without "
                "--no-build-envs"
            )
        if choice.kind == "conda":
            return build_conda_environment(choice.source, self.environments_dir)
        return build_requirements_environment(
            choice.source, self.environments_dir, provided=choice.provided
        )

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        await asyncio.gather(*(pool.close() for pool in pools), return_exceptions=True)


class EnvironmentRunner(DeferredWorkerRunner):
    """A ``ModelRunner`` for a model with its own environment (a ``WorkerRunner`` on its pool)."""

    def __init__(
        self, settings: ModelSettings, pools: EnvironmentPools, own: OwnPool | None = None
    ) -> None:
        self.settings = settings
        self._pools = pools
        self._own = own  # its own (or its group's) pool in the environment; None: shared
        self._runner: WorkerRunner | None = None

    @property
    def concurrency(self) -> int:
        return self._pools.size if self._own is None else self._own.size

    async def load(self) -> MetadataModelResponse:
        pool = await self._pools.pool_for(self.settings, self._own)
        self._runner = WorkerRunner(self.settings, pool)
        return await self._runner.load()

    async def unload(self) -> None:
        if self._runner is not None:
            await self._runner.unload()


def has_environment(settings: ModelSettings) -> bool:
    """Whether ``settings`` runs in an environment of its own (by the one rule; cheap).

    A requirements file the server's own environment already satisfies needs none.
    """
    if settings.parameters.environment_tarball or settings.parameters.environment_path:
        return True
    if not settings.folder:
        return False
    try:
        choice = choose_environment(
            Path(settings.folder), mlflow_environment=settings.parameters.mlflow_environment
        )
    except InvalidEnvironment:
        return True  # loading it reports the problem
    if choice is None:
        return False
    if choice.kind != "requirements":
        return True
    try:
        return not satisfied_by_server(choice.source)
    except (OSError, UnicodeDecodeError):
        return True  # building it reports the problem
