"""Which model's code is running: set by the runner around ``load``/``predict``.

Custom metrics (``mlpack.log``) and log lines read it to label what they record with
the model's name and version. It lives at the bottom of the package and imports nothing.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import NamedTuple


class ModelRef(NamedTuple):
    """A model version's identity, as metrics label it (no version: ``""``)."""

    name: str
    version: str


_current: ContextVar[ModelRef | None] = ContextVar("mlpack_current_model", default=None)


def current_model() -> ModelRef | None:
    """The model whose ``load``/``predict`` is running in this context, if any."""
    return _current.get()


class model_scope:  # used like a function: ``with model_scope(name, version):``
    """Mark the code run inside the block as belonging to model ``name``/``version``.

    A class rather than a ``contextlib.contextmanager`` generator: it runs around every
    prediction, and a generator-based manager costs about three times as much.
    """

    __slots__ = ("ref", "token")

    def __init__(self, name: str, version: str | None) -> None:
        self.ref = ModelRef(name, version or "")
        self.token: Token[ModelRef | None] | None = None

    def __enter__(self) -> ModelRef:
        self.token = _current.set(self.ref)
        return self.ref

    def __exit__(self, *exc_info: object) -> None:
        if self.token is not None:
            _current.reset(self.token)
            self.token = None
