"""Turn mlpack errors into one CLI line and an exit code."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer

from ..errors import MLPackError

USAGE_ERROR = 2
STARTUP_FAILURE = 3


@contextlib.contextmanager
def exit_on_error(code: int = 1) -> Iterator[None]:
    """Print ``MLPackError`` messages (no traceback) and exit with ``code``."""
    try:
        yield
    except MLPackError as error:
        typer.secho(f"Error: {error.message}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code) from None
