"""Run a model that brings its own environment in a child process of that environment's Python.

INTERIM: this is a one-process-per-model runner so per-model environments work before
the worker pool (``engine/workers``, branch ``engine``) lands. The next step is to
launch the pool's workers with ``Environment.python`` and :func:`worker_launch` below,
and delete this runner. What stays: how the child is launched (see ``worker_launch``).

How the server's code reaches a Python that has no mlpack installed:

* ``PYTHONPATH`` holds only a small "shim" folder with symlinks to the server's
  ``mlpack`` (and built-in runtime) packages, so ``import mlpack`` works and nothing
  else of the server's shadows the environment;
* the environment's own ``site-packages`` come next (normal ``site`` processing), so
  its packages win;
* the server's ``site-packages`` are appended last, before ``mlpack`` is imported, so
  mlpack's own dependencies (pydantic, numpy, ...) are found when the environment
  lacks them.

The environment must therefore have the server's Python minor version (checked when
the environment is resolved), and any package it does provide that mlpack also uses
(e.g. numpy) must be a version mlpack supports.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import pickle
import struct
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path
from typing import Any, BinaryIO, Optional

from ..environments import Environment, resolve_environment
from ..errors import MLPackError, ModelError, ModelLoadError, WorkerError
from ..settings import ModelSettings
from ..types import InferenceRequest, InferenceResponse, MetadataModelResponse

_BOOT = (
    "import json, sys; sys.path.extend(json.loads(sys.argv[1])); "
    "from mlpack.engine.environment_runner import child_main; "
    "child_main(int(sys.argv[2]), int(sys.argv[3]))"
)
# Top-level packages of the server that the child needs: mlpack and built-in runtimes.
_SHIMMED = ("mlpack", "mlpack_sklearn")


def worker_launch(python: Path, shim_root: Path) -> tuple[list[str], dict[str, str]]:
    """The command prefix and environment variables that start ``python`` with mlpack on its path."""
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
            targets[name] = str(Path(list(spec.submodule_search_locations)[0]).resolve())
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
    """The server's import locations, minus its standard library (the child has its own)."""
    stdlib = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib")}
    paths = []
    for entry in sys.path:
        if not entry or not os.path.isdir(entry):
            continue
        real = os.path.realpath(entry)
        if any(real == s or real.startswith(s + os.sep) and "-packages" not in real for s in stdlib):
            continue
        paths.append(real)
    return paths


class EnvironmentRunner:
    """Runs one model in a child process started with its environment's Python."""

    def __init__(self, settings: ModelSettings, environments_dir: Path) -> None:
        self.settings = settings
        self._environments_dir = environments_dir
        self._process: Optional[subprocess.Popen[bytes]] = None
        self._to_child: Optional[BinaryIO] = None
        self._from_child: Optional[BinaryIO] = None
        self._lock = threading.Lock()
        self.environment: Optional[Environment] = None

    async def load(self) -> MetadataModelResponse:
        try:
            return await asyncio.to_thread(self._start_and_load)  # type: ignore[no-any-return]
        except BaseException:
            await asyncio.to_thread(self._stop)
            raise

    def _start_and_load(self) -> Any:
        parameters = self.settings.parameters
        environment = resolve_environment(
            parameters.environment_tarball,
            parameters.environment_path,
            Path(self.settings.folder) if self.settings.folder else None,
            self._environments_dir,
        )
        assert environment is not None
        self.environment = environment
        command, env = worker_launch(environment.python, self._environments_dir)
        parent_read, child_write = os.pipe()
        child_read, parent_write = os.pipe()
        try:
            self._process = subprocess.Popen(
                [*command, str(child_read), str(child_write)],
                env=env,
                pass_fds=(child_read, child_write),
                stdin=subprocess.DEVNULL,
            )
        finally:
            os.close(child_read)
            os.close(child_write)
        self._from_child = os.fdopen(parent_read, "rb")
        self._to_child = os.fdopen(parent_write, "wb")
        return self._call("load", self.settings)

    async def predict(self, request: InferenceRequest) -> InferenceResponse:
        return await asyncio.to_thread(self._call, "predict", request)  # type: ignore[no-any-return]

    async def unload(self) -> None:
        await asyncio.to_thread(self._stop)

    def _call(self, operation: str, payload: Any) -> Any:
        with self._lock:
            if self._process is None or self._to_child is None or self._from_child is None:
                raise WorkerError(f"model '{self.settings.name}': its worker is not running")
            try:
                _send(self._to_child, (operation, payload))
                status, value = _receive(self._from_child)
            except (OSError, EOFError, struct.error) as error:
                code = self._process.poll()
                raise WorkerError(
                    f"model '{self.settings.name}': its environment worker "
                    f"{'exited with ' + str(code) if code is not None else 'stopped answering'} ({error!r})"
                ) from None
        if status == "error":
            raise value
        return value

    def _stop(self) -> None:
        process, self._process = self._process, None
        for stream in (self._to_child, self._from_child):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        self._to_child = self._from_child = None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _send(stream: BinaryIO, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("!Q", len(data)) + data)
    stream.flush()


def _receive(stream: BinaryIO) -> Any:
    header = stream.read(8)
    if len(header) < 8:
        raise EOFError("worker closed its pipe")
    (size,) = struct.unpack("!Q", header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("worker closed its pipe mid-message")
    return pickle.loads(data)


def child_main(read_fd: int, write_fd: int) -> None:
    """Entry point of the environment's Python: load one model, then answer predict calls."""
    from .runner import instantiate_model, load_model, predict_with

    incoming = os.fdopen(read_fd, "rb")
    outgoing = os.fdopen(write_fd, "wb")
    loop = asyncio.new_event_loop()
    model = None
    while True:
        try:
            operation, payload = _receive(incoming)
        except EOFError:
            return
        try:
            if operation == "load":
                model = instantiate_model(payload)
                result: Any = loop.run_until_complete(load_model(model))
            elif operation == "predict":
                assert model is not None
                result = loop.run_until_complete(predict_with(model, payload))
            else:
                raise ModelError(f"unknown worker operation {operation!r}")
            reply: tuple[str, Any] = ("ok", result)
        except MLPackError as error:
            reply = ("error", error)
        except Exception as error:  # noqa: BLE001 - reported to the parent, not raised here
            wrapped = ModelLoadError if operation == "load" else ModelError
            reply = ("error", wrapped(f"model failed in its environment: {error!r}"))
        try:
            _send(outgoing, reply)
        except (pickle.PicklingError, TypeError) as error:
            _send(outgoing, ("error", ModelError(f"worker result could not be pickled: {error}")))
