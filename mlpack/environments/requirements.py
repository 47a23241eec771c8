"""Reading requirements files: CPU-only variants, and whether the server already satisfies one.

* ``cpu_variants``: a requirement with a CPU-only twin on this platform is swapped for it
  (``xgboost`` → ``xgboost-cpu`` on Linux: the same module without ~350 MB of CUDA
  libraries), for images and for environments ``mlpack start`` builds.
* ``satisfied_by_server``: every requirement is installed, at an allowed version, in the
  server's own environment, so a model needs no environment of its own.
* ``without_provided``: drop the requirements on packages the server provides (e.g. MLflow
  for an MLflow model's own environment) when its installed version is allowed.
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


def without_provided(text: str, provided: tuple[str, ...]) -> str:
    """``text`` without the lines requiring ``provided`` at a version the server has.

    ``provided`` names one package under all its distribution names (``mlflow`` and
    ``mlflow-skinny`` install the same ``mlflow`` module): a requirement on any of them is
    met by whichever the server has installed. Workers in an environment find the server's
    packages after the environment's own, so such a package need not be installed again.
    """
    if not provided:
        return text
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    names = {canonicalize_name(name) for name in provided}
    installed = _installed_version(provided)
    kept = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        try:
            requirement = Requirement(line) if line and not line.startswith(("#", "-")) else None
        except InvalidRequirement:
            requirement = None
        if (
            installed is not None
            and requirement is not None
            and canonicalize_name(requirement.name) in names
            and not requirement.url
            and requirement.specifier.contains(installed, prereleases=True)
        ):
            kept.append(f"# {raw}  (provided by the server)")
            continue
        kept.append(raw)
    return "\n".join(kept) + ("\n" if text.endswith("\n") else "")


def _installed_version(names: tuple[str, ...]) -> str | None:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None
