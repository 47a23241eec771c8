"""A pool's zygote: one process loads the models once, and every worker is forked from it.

Read-only model memory (numpy / ONNX / joblib arrays) is then shared copy-on-write by the
zygote and all its workers, so N workers cost about one model's memory rather than N.

The zygote is single-threaded and runs no event loop between calls: it reads one
control message at a time on a ``SOCK_SEQPACKET`` socket (load, unload, fork, ping,
stop) and answers it. For ``Fork`` the server sends the worker's end of a fresh socket
pair along (``SCM_RIGHTS``); the zygote forks, and the child closes the control socket,
makes itself a new event loop and runs the ordinary worker loop (``run_worker``) with the
models it inherited. The zygote reaps its children itself (``SIGCHLD`` ignored), so the
server follows a forked worker by its socket and its pid (``ForkedProcess``).

A worker outlives its zygote: when the zygote dies the server starts a new one (loading
the pool's models again) while the workers keep serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import pickle
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...errors import WorkerError
from ...settings import ModelSettings
from ...types import MetadataModelResponse
from .memory import process_alive, rss_bytes
from .messages import LoadModel, Ping, Reply, Stop, UnloadModel

logger = logging.getLogger("mlpack.workers")

MAX_MESSAGE = 4 << 20  # a control message (model settings) is far smaller
ZygoteStarter = Callable[[socket.socket], Any]  # starts run_zygote on a socket; a process handle


@dataclass
class Fork:
    """Fork a worker that serves on the socket sent with this message."""

    worker_id: int


@dataclass
class Forked:
    pid: int
    models: list[str]  # keys the child starts with


@dataclass
class Loaded:
    metadata: MetadataModelResponse
    size: int  # bytes the zygote's resident memory grew by while loading


# -- the zygote process ---------------------------------------------------------------------
def run_zygote(sock: socket.socket) -> None:
    """Entry point of a zygote process: answer control messages on ``sock`` until told to stop."""
    from .worker import _Models

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # forked workers are reaped by the kernel
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)-5s [zygote] [%(name)s] %(message)s"
    )
    sock.setblocking(True)
    models = _Models()
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 1)
        except OSError:
            break
        if not data:
            break  # the server is gone
        message = pickle.loads(data)
        if isinstance(message, Fork):
            if not fds:
                reply = Reply(0, error=WorkerError("fork: no socket came with the message"))
            else:
                pid = _fork_worker(sock, fds[0], message.worker_id, models)
                reply = Reply(0, value=Forked(pid, list(models.models)))
        else:
            for fd in fds:
                os.close(fd)
            if isinstance(message, Stop):
                _reply(sock, Reply(0))
                break
            reply = _handle(models, message)
        _reply(sock, reply)
    sock.close()


def _handle(models: Any, message: Any) -> Reply:
    try:
        if isinstance(message, LoadModel):
            before = rss_bytes()
            metadata = models.handle(message)
            return Reply(0, value=Loaded(metadata, max(0, rss_bytes() - before)))
        if isinstance(message, UnloadModel):
            models.handle(message)
            gc.collect()
            return Reply(0)
        if isinstance(message, Ping):
            return Reply(0, value=os.getpid())
        raise TypeError(f"unknown message {type(message).__name__}")
    except BaseException as error:  # every failure goes back to the server
        from .worker import _picklable

        return Reply(0, error=_picklable(error))


def _reply(sock: socket.socket, reply: Reply) -> None:
    with contextlib.suppress(OSError):
        sock.send(pickle.dumps(reply, protocol=5))


def _fork_worker(control: socket.socket, fd: int, worker_id: int, models: Any) -> int:
    """Fork a worker on socket ``fd`` (closed here); the child's pid."""
    if threading.active_count() > 1:
        logger.warning(
            "forking with %d threads running (a model started threads while loading); "
            "set preload: false if its library is not fork-safe",
            threading.active_count(),
        )
    gc.collect()
    gc.freeze()  # the child's collector never writes to the inherited objects' pages
    pid = os.fork()
    if pid == 0:  # the worker
        try:
            _become_worker(control, fd, worker_id, models)
        finally:
            os._exit(0)
    gc.unfreeze()
    os.close(fd)
    return pid


def _become_worker(control: socket.socket, fd: int, worker_id: int, models: Any) -> None:
    from .worker import run_worker

    control.close()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    models.loop.close()  # the zygote's loop (its selector is shared with the zygote)
    models.loop = asyncio.new_event_loop()
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s %(levelname)-5s [worker {worker_id}] [%(name)s] %(message)s",
        force=True,
    )
    run_worker(socket.socket(fileno=fd), worker_id, models=models)


def zygote_main(fd: int) -> None:
    """Entry point in an environment's Python: the zygote on the inherited socket."""
    run_zygote(socket.socket(fileno=fd))


# -- the server's side ------------------------------------------------------------------------
class ForkedProcess:
    """A worker forked by a zygote, with the bits of ``multiprocessing.Process`` a pool uses.

    It is the zygote's child, not the server's: the server can signal it but not wait for
    it, so ``join`` polls and ``exitcode`` is unknown.
    """

    def __init__(self, pid: int, preloaded: frozenset[str]) -> None:
        self.pid = pid
        self.preloaded = preloaded  # models it was forked with (the pool loads no others twice)
        self.exitcode: int | None = None

    def is_alive(self) -> bool:
        return process_alive(self.pid)

    def join(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout if timeout is not None else 1e9)
        while self.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.pid, signal.SIGKILL)


class Zygote:
    """The server's handle on one zygote process: start, load, unload, fork, restart, stop.

    Calls are blocking socket round trips run on a thread, one at a time.

    Parameters:
        start: starts ``run_zygote`` on the given socket (its own Python for environments);
            returns a process handle (pid, is_alive, join, kill).
        timeout: how long starting, a fork or a ping may take (loading has no limit, as
            loading into workers has none).
    """

    def __init__(self, start: ZygoteStarter, timeout: float = 60.0) -> None:
        self._start = start
        self.timeout = timeout
        self.process: Any = None
        self._sock: socket.socket | None = None
        self._lock = asyncio.Lock()
        self.restarts = 0
        self.sizes: dict[str, int] = {}  # bytes each model added to the zygote

    @property
    def pid(self) -> int | None:
        return None if self.process is None else int(self.process.pid)

    def alive(self) -> bool:
        return self.process is not None and bool(self.process.is_alive())

    async def start(self) -> None:
        async with self._lock:
            await self._start_locked()

    async def _start_locked(self) -> None:
        self._close_socket()
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.process = self._start(child_end)
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()
        self._sock = parent_end
        pid = await self._call_locked(Ping(), self.timeout)
        logger.info("zygote started (pid %s)", pid)

    async def restart(self, models: list[tuple[str, ModelSettings]]) -> None:
        """Start a new zygote (the old one died) and load ``models`` into it again."""
        async with self._lock:
            if self.process is not None:
                with contextlib.suppress(Exception):
                    self.process.kill()
            await self._start_locked()
            self.restarts += 1
            for key, settings in models:
                try:
                    loaded = await self._call_locked(LoadModel(key, settings), None)
                    self.sizes[key] = loaded.size
                except Exception as error:
                    # Workers then load it themselves (the pool sees it is not preloaded).
                    logger.error("the new zygote could not load '%s': %s", key, error)

    async def load(self, key: str, settings: ModelSettings) -> Loaded:
        async with self._lock:
            loaded: Loaded = await self._call_locked(LoadModel(key, settings), None)
            self.sizes[key] = loaded.size
            return loaded

    async def unload(self, key: str) -> None:
        self.sizes.pop(key, None)
        async with self._lock:
            if self.alive():
                await self._call_locked(UnloadModel(key), self.timeout)

    async def fork(self, child_end: socket.socket, worker_id: int) -> ForkedProcess:
        async with self._lock:
            forked: Forked = await self._call_locked(Fork(worker_id), self.timeout, child_end)
        return ForkedProcess(forked.pid, frozenset(forked.models))

    async def ping(self) -> bool:
        """Whether the zygote answers within ``timeout``."""
        try:
            async with self._lock:
                await self._call_locked(Ping(), self.timeout)
        except (WorkerError, OSError):
            return False
        return True

    async def _call_locked(
        self, message: Any, timeout: float | None, send_socket: socket.socket | None = None
    ) -> Any:
        sock = self._sock
        if sock is None or not self.alive():
            raise WorkerError("the pool's zygote is not running (a new one is starting)")
        trip = asyncio.ensure_future(
            asyncio.to_thread(_round_trip, sock, message, timeout, send_socket)
        )
        try:
            # A cancelled caller still waits for the answer: the lock is held until then,
            # so the next call never reads this call's reply.
            reply: Reply = await asyncio.shield(trip)
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):
                await trip
            raise
        except WorkerError:
            # Out of step (no answer in time) or gone: stop it; the pool starts a new one.
            with contextlib.suppress(Exception):
                self.process.kill()
            self._close_socket()
            raise
        if reply.error is not None:
            raise reply.error
        return reply.value

    async def close(self, timeout: float = 5.0) -> None:
        async with self._lock:
            if self._sock is not None and self.alive():
                with contextlib.suppress(Exception):
                    await self._call_locked(Stop(), timeout)
            self._close_socket()
            if self.process is not None:
                process = self.process
                await asyncio.to_thread(process.join, timeout)
                if process.is_alive():
                    process.kill()
                    await asyncio.to_thread(process.join, 1)

    def _close_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _round_trip(
    sock: socket.socket, message: Any, timeout: float | None, send_socket: socket.socket | None
) -> Reply:
    """Send ``message`` (with ``send_socket``'s descriptor) and read the zygote's reply."""
    sock.settimeout(timeout)
    try:
        data = pickle.dumps(message, protocol=5)
        fds = [send_socket.fileno()] if send_socket is not None else []
        socket.send_fds(sock, [data], fds)
        answer = sock.recv(MAX_MESSAGE)
    except TimeoutError:
        raise WorkerError(f"the pool's zygote did not answer within {timeout:g}s") from None
    except OSError as error:
        raise WorkerError(f"the pool's zygote is gone ({error})") from None
    if not answer:
        raise WorkerError("the pool's zygote exited")
    reply = pickle.loads(answer)
    if not isinstance(reply, Reply):
        raise WorkerError(f"unexpected answer from the zygote: {type(reply).__name__}")
    return reply
