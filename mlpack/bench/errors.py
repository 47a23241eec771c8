"""The one error family of ``mlpack bench``/``tune``: the CLI prints its message and exits 1/2."""

from __future__ import annotations


class BenchError(Exception):
    """A benchmark cannot run as asked (bad input, unreachable server, bad file)."""

    @property
    def message(self) -> str:
        return str(self)
