"""Which model's code is running: set by the runner around ``load``/``predict``.

Custom metrics (``mlpack.log``) and log lines read it to label what they record with
the model's name and version. It lives at the bottom of the package and imports nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import NamedTuple


class ModelRef(NamedTuple):
    """A model version's identity, as metrics label it (no version: ``""``)."""

    name: str
    version: str


_current: ContextVar[ModelRef | None] = ContextVar("mlpack_current_model", default=None)


def current_model() -> ModelRef | None:
    """The model whose ``load``/``predict`` is running in this context, if any."""
    return _current.get()


@contextlib.contextmanager
def model_scope(name: str, version: str | None) -> Iterator[ModelRef]:
    """Mark the code run inside the block as belonging to model ``name``/``version``."""
    ref = ModelRef(name, version or "")
    token = _current.set(ref)
    try:
        yield ref
    finally:
        _current.reset(token)
