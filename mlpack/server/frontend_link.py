"""The control link between the front-end supervisor and one front-end process.

One Unix socket pair per front-end carries small pickled messages, each frame a 4-byte
length and a pickle. Either end may ask (``Apply``: a repository load/unload;
``Collect``: a metrics snapshot; ``PoolAcquire``/``PoolRelease``: a model in a shared
worker pool) and the other answers with the same ``call_id`` (``Done``, ``Snapshot``,
``PoolAnswer``). ``Ready`` tells the supervisor a front-end has loaded its models;
``PoolWorkers`` tells a front-end the current workers of a shared pool. ``Gather``
(front-end → supervisor) asks every live front-end the same query (``Ask``, answered by
``Answer``) and returns their answers (``Gathered``): per-model statistics and the
dashboard's data across front-ends (``server/frontend_stats.py``). Nothing on the data
plane crosses this link (front-ends call shared workers on their own connections).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import pickle
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..engine.workers.messages import WorkerInfo
from ..errors import MLPackError
from ..settings import ModelSettings
from ..types import MetadataModelResponse

_LENGTH = struct.Struct("!I")
# A control message is small (a name, or one front-end's metric samples).
MAX_MESSAGE_SIZE = 64 * 1024 * 1024

# (name, documentation, type, [(sample name, labels, value), ...]) per metric family.
FamilySnapshot = tuple[str, str, str, list[tuple[str, dict[str, str], float]]]


@dataclass(frozen=True)
class Apply:
    """Load or unload a model by name (front-end → supervisor: everywhere; back: here)."""

    call_id: int
    action: str  # "load" | "unload"
    name: str
    generation: int = 0  # the supervisor's number for this call (shared pools' key)


@dataclass(frozen=True)
class Done:
    """The answer to ``Apply``: None, or the error to raise to the caller."""

    call_id: int
    error: MLPackError | None = None


@dataclass(frozen=True)
class Collect:
    """Supervisor → front-end: send your in-memory metric families, and your statistics
    and dashboard buckets from second ``since`` on (``server/frontend_figures.py``)."""

    call_id: int
    since: int = 0


@dataclass(frozen=True)
class Snapshot:
    """The answer to ``Collect``."""

    call_id: int
    families: list[FamilySnapshot] = field(default_factory=list)
    figures: Any = None  # ``Figures`` (None: the front-end keeps none)


@dataclass(frozen=True)
class Ready:
    """Front-end → supervisor: models loaded, listening on every port."""

    index: int
    pid: int


# -- figures across front-ends (server/frontend_stats.py) ----------------------------
@dataclass(frozen=True)
class Gather:
    """Front-end → supervisor: ask every live front-end ``query``; answered by ``Gathered``."""

    call_id: int
    query: Any


@dataclass(frozen=True)
class Gathered:
    """The answer to ``Gather``: each answering front-end's value, who was left out, and
    what the front-ends that died had counted (``retained``, from ``retired`` of them)."""

    call_id: int
    values: list[tuple[int, Any]] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)
    retained: Any = None
    retired: int = 0


@dataclass(frozen=True)
class Ask:
    """Supervisor → front-end: answer ``query`` from your own figures (``Answer``)."""

    call_id: int
    query: Any


@dataclass(frozen=True)
class Answer:
    """The answer to ``Ask``."""

    call_id: int
    value: Any = None


# -- shared worker pools (server/pool_host.py, server/frontend_pools.py) ----------------------
@dataclass(frozen=True)
class PoolAcquire:
    """Front-end → supervisor: load ``settings`` into its shared pool for ``user`` (a runner
    of front-end ``pid``); models of the same name and ``generation`` load once."""

    call_id: int
    pid: int
    user: str
    settings: ModelSettings
    generation: int


@dataclass(frozen=True)
class PoolRelease:
    """Front-end → supervisor: ``user`` is done with ``key`` (the last release unloads)."""

    call_id: int
    pid: int
    user: str
    key: str


@dataclass(frozen=True)
class PoolAnswer:
    """The answer to ``PoolAcquire``/``PoolRelease``: the pool's name, the model's key in it
    and its metadata; or the error."""

    call_id: int
    pool: str = ""
    key: str = ""
    metadata: MetadataModelResponse | None = None
    error: MLPackError | None = None


@dataclass(frozen=True)
class PoolWorkers:
    """Supervisor → front-end: the current workers of shared pool ``pool`` (sent at start,
    before an acquire's answer, and after every change)."""

    pool: str
    size: int
    models: dict[str, ModelSettings]
    workers: list[WorkerInfo]


# Messages that ask (answered through the link's handler) and answers (matched by call_id).
_CALLS = (Apply, Collect, Gather, Ask, PoolAcquire, PoolRelease)
_ANSWERS = (Done, Snapshot, Gathered, Answer, PoolAnswer)


Handler = Callable[[Any], Awaitable[Any]]


class ControlLink:
    """One end of a control socket: ``call`` asks the other end, ``handler`` answers it.

    Parameters:
        handler: answers an incoming call (``Apply``, ``Collect``, ``Gather``, ``Ask``,
            ``PoolAcquire``, ``PoolRelease``).
        on_message: told about one-way messages (``Ready``, ``PoolWorkers``).
    """

    def __init__(
        self,
        handler: Handler | None = None,
        on_message: Callable[[Any], None] | None = None,
    ) -> None:
        self.handler = handler
        self.on_message = on_message
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closed = asyncio.Event()

    async def open(self, sock: Any) -> None:
        self._reader, self._writer = await asyncio.open_unix_connection(
            sock=sock, limit=MAX_MESSAGE_SIZE
        )

    def next_id(self) -> int:
        return next(self._ids)

    def send(self, message: Any) -> None:
        if self._writer is None or self._writer.is_closing():
            raise ConnectionError("control link closed")
        payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self._writer.write(_LENGTH.pack(len(payload)) + payload)

    async def call(
        self, message: Apply | Collect | Gather | Ask | PoolAcquire | PoolRelease
    ) -> Any:
        """Send ``message`` and wait for its answer (ConnectionError if the link closes)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[message.call_id] = future
        try:
            self.send(message)
            return await future
        finally:
            self._pending.pop(message.call_id, None)

    async def run(self) -> None:
        """Read messages until the other end goes away; then fail what waits on it."""
        assert self._reader is not None
        try:
            while True:
                head = await self._reader.readexactly(_LENGTH.size)
                (size,) = _LENGTH.unpack(head)
                if size > MAX_MESSAGE_SIZE:
                    raise ConnectionError(f"control message of {size} bytes")
                message = pickle.loads(await self._reader.readexactly(size))
                self._dispatch(message)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self.closed.set()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("control link closed"))
            if self._writer is not None:
                self._writer.close()

    def _dispatch(self, message: Any) -> None:
        if isinstance(message, _ANSWERS):
            future = self._pending.get(message.call_id)
            if future is not None and not future.done():
                future.set_result(message)
        elif isinstance(message, _CALLS) and self.handler is not None:
            task = asyncio.create_task(self._answer(self.handler, message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif self.on_message is not None:
            self.on_message(message)

    async def _answer(self, handler: Handler, message: Any) -> None:
        answer = await handler(message)
        with contextlib.suppress(ConnectionError):
            self.send(answer)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def as_error(error: BaseException) -> MLPackError:
    """An error that pickles and keeps its status (model code may raise anything)."""
    if isinstance(error, MLPackError):
        try:
            pickle.dumps(error)
            return error
        except Exception:
            pass
    return MLPackError(f"{type(error).__name__}: {error}")


@dataclass
class FrontendRole:
    """What makes an ``MLPackServer`` one front-end among several (``server/frontends.py``).

    Parameters:
        index: this front-end's number (0 .. N-1), its metrics label.
        control: its end of the control socket to the supervisor.
        ops: the last repository load/unload of each model made through the API since
            the server started, in order (action, name, generation); they decide those
            models (no startup load) so a replacement matches its peers' index.
        listen_after_load: open the ports only once models are loaded (replacements and
            front-ends after the first join the shared ports ready to serve).
    """

    index: int
    control: Any
    ops: list[tuple[str, str, int]] = field(default_factory=list)
    listen_after_load: bool = False
