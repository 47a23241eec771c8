"""Where mlpack's bundled Jinja2 templates live, and how they are rendered.

``templates/`` at the repository root holds them; the package reaches it through
the ``mlpack/_templates`` symlink (copied as real files into wheels).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jinja2


def template_root() -> Path:
    """The folder that holds every bundled template (``templates/``)."""
    return Path(__file__).resolve().parent / "_templates"


def template_environment(subfolder: str) -> jinja2.Environment:
    """A strict Jinja2 environment loading from ``template_root() / subfolder``."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_root() / subfolder)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
