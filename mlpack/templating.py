"""Where mlpack's bundled Jinja2 templates live, and the one environment that renders them.

``templates/`` at the repository root holds them; the package reaches it through
the ``mlpack/_templates`` symlink (copied as real files into wheels). Every template
(the Dockerfile, .dockerignore, ``mlpack init`` scaffolds) is rendered by
``template_environment()``: strict undefined, trailing newlines kept, no autoescaping,
no block trimming (templates place their tags so that no stray blank line is left).
Names resolve against ``templates/`` and then ``templates/init/`` (scaffold templates
include each other as ``_common/...``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jinja2

INIT_FOLDER = "init"


def template_root() -> Path:
    """The folder that holds every bundled template (``templates/``)."""
    return Path(__file__).resolve().parent / "_templates"


@functools.lru_cache(maxsize=1)
def template_environment() -> jinja2.Environment:
    """The strict Jinja2 environment every bundled template is rendered with."""
    import jinja2

    root = template_root()
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(root), str(root / INIT_FOLDER)]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
