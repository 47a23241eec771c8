"""Reading requirements files: CPU-only variants, and whether the server already satisfies one.

* ``cpu_variants``: a requirement with a CPU-only twin on this platform is swapped for it
  (``xgboost`` → ``xgboost-cpu`` on Linux: the same module without ~350 MB of CUDA
  libraries), for images and for environments ``mlpack start`` builds.
* ``satisfied_by_server``: every requirement is installed, at an allowed version, in the
  server's own environment, so a model needs no environment of its own.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

# name → its CPU-only distribution, where one exists for this platform.
CPU_VARIANTS: dict[str, str] = {"xgboost": "xgboost-cpu"} if sys.platform == "linux" else {}


def cpu_variants(text: str) -> str:
    """``text`` (a requirements file) with each requirement that has a CPU-only twin swapped."""
    for name, variant in CPU_VARIANTS.items():
        pattern = re.compile(rf"^(\s*){re.escape(name)}(?=\s*(?:[\[<>=!~;@]|$))", re.I | re.M)
        text = pattern.sub(rf"\g<1>{variant}", text)
    return text


def satisfied_by_server(requirements: Path) -> bool:
    """True when every line of ``requirements`` is a plain requirement already met here.

    Options (``-r``, ``--index-url``), URLs, paths and extras are never judged met.
    """
    from packaging.requirements import InvalidRequirement, Requirement

    for raw in cpu_variants(requirements.read_text()).splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            return False
        if requirement.url or requirement.extras:
            return False
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            return False
        if not requirement.specifier.contains(installed, prereleases=True):
            return False
    return True
