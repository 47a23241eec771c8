"""mlpack as an installed distribution: its name, where it was installed from, and names to avoid.

The import package and the command are ``mlpack``; the distribution is ``mlpack-serve``,
because ``mlpack`` on the public package index is an unrelated C++ library. A requirements
file naming ``mlpack`` would install that library, so generated projects never list it and
``mlpack build`` / ``mlpack env pack`` refuse a file that does.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

from ._version import __version__
from .errors import ForeignRequirementError as ForeignRequirementError  # in the error tree

DISTRIBUTION = "mlpack-serve"
FOREIGN_NAME = "mlpack"
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass(frozen=True)
class ForeignRequirement:
    """One requirements line that would install the unrelated ``mlpack`` library."""

    path: Path | None
    line_number: int
    line: str


def normalise(name: str) -> str:
    """A project name as the package index compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def foreign_requirements(text: str, path: Path | None = None) -> list[ForeignRequirement]:
    """Lines of a requirements file that name ``mlpack`` from the index (not a direct URL)."""
    found = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        match = _NAME.match(line)
        if match and normalise(match.group(1)) == FOREIGN_NAME and "@" not in line:
            found.append(ForeignRequirement(path, number, line))
    return found


def check_requirements_file(path: Path) -> None:
    """``ForeignRequirementError`` if ``path`` lists ``mlpack`` (the unrelated library)."""
    problems = foreign_requirements(path.read_text(encoding="utf-8"), path)
    if problems:
        first = problems[0]
        raise ForeignRequirementError(
            f"{path}:{first.line_number}: '{first.line}' would install the unrelated C++ library "
            f"called '{FOREIGN_NAME}' on the package index. The serving runtime comes from the "
            f"image or the installed tool (distribution '{DISTRIBUTION}'): delete the line "
            "(projects made by older `mlpack init` listed it) and list only the model's own "
            "dependencies"
        )


def install_source() -> str:
    """The ``pip install`` argument that installs this very mlpack, quoted for a shell.

    A checkout (editable or not) is named by its path; an index install by name and version.
    """
    checkout = _checkout_root()
    if checkout is not None:
        editable = _installed_editable()
        return ("-e " if editable else "") + shlex.quote(str(checkout))
    return shlex.quote(f"{DISTRIBUTION}=={__version__}")


def _checkout_root() -> Path | None:
    """The source tree this mlpack runs from or was installed from, if it is a local folder."""
    url = _direct_url()
    if url is not None:
        parsed = urlparse(str(url.get("url", "")))
        if parsed.scheme == "file" and "dir_info" in url:
            folder = Path(unquote(parsed.path))
            if _is_checkout(folder):
                return folder
    here = Path(__file__).resolve().parents[1]
    return here if _is_checkout(here) else None


def _installed_editable() -> bool:
    url = _direct_url()
    dir_info = url.get("dir_info") if url else None
    return isinstance(dir_info, dict) and bool(dir_info.get("editable"))


def _direct_url() -> dict[str, object] | None:
    """PEP 610's ``direct_url.json`` of the installed distribution (None from an index)."""
    try:
        text = metadata.distribution(DISTRIBUTION).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _is_checkout(folder: Path) -> bool:
    pyproject = folder / "pyproject.toml"
    return (
        pyproject.is_file()
        and f'name = "{DISTRIBUTION}"' in pyproject.read_text(encoding="utf-8")
        and (folder / "mlpack" / "_version.py").is_file()
    )
