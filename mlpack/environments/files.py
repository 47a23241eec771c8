"""The files a model folder names its environment with, and which one wins.

One rule everywhere: a packed tarball, then a requirements file, then a conda file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

REQUIREMENTS_FILES = ("requirements.txt",)
CONDA_FILES = ("environment.yml", "environment.yaml", "conda.yaml", "conda.yml")
TARBALL_FILES = ("environment.tar.gz",)

EnvironmentKind = Literal["requirements", "conda", "tarball"]


def find_environment_file(folder: Path) -> Optional[Path]:
    """The environment description a model folder brings (first match wins), or None."""
    for name in (*TARBALL_FILES, *REQUIREMENTS_FILES, *CONDA_FILES):
        if (folder / name).is_file():
            return folder / name
    return None


def environment_kind(source: Path) -> EnvironmentKind:
    """What kind of environment ``source`` describes (anything else is a packed tarball)."""
    if source.name in REQUIREMENTS_FILES:
        return "requirements"
    if source.name in CONDA_FILES:
        return "conda"
    return "tarball"
