"""Find models below a folder: every ``model-settings.json`` is one model."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import MLPackError
from ..settings import MODEL_SETTINGS_FILENAME, ModelSettings

logger = logging.getLogger("mlpack.repository")

# Folders never searched: caches can be large and hold no models.
_SKIPPED_DIRS = {"__pycache__", "node_modules", "site-packages", ".git", ".mlpack"}
# A folder holding one of these is a Python environment (venv, conda, unpacked tarball),
# never a model folder: it is skipped whatever it is called (a model may be called `envs`).
_ENVIRONMENT_MARKS = ("pyvenv.cfg", "conda-meta", ".mlpack-environment.json")


@dataclass(frozen=True)
class SettingsProblem:
    """A ``model-settings.json`` that could not be read."""

    path: Path
    reason: str


def find_model_settings_files(root: Path) -> list[Path]:
    """Every ``model-settings.json`` at or below ``root``, in a stable order."""
    root = Path(root)
    found: list[Path] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in _SKIPPED_DIRS
            and not d.startswith(".")
            and not _is_environment(Path(folder) / d)
        )
        if MODEL_SETTINGS_FILENAME in files:
            found.append(Path(folder) / MODEL_SETTINGS_FILENAME)
    return found


def discover_models(root: Path) -> tuple[list[ModelSettings], list[SettingsProblem]]:
    """Read every model below ``root``; unreadable ones are returned as problems."""
    models: list[ModelSettings] = []
    problems: list[SettingsProblem] = []
    for path in find_model_settings_files(root):
        try:
            models.append(ModelSettings.resolve(path))
        except MLPackError as error:
            logger.error("skipping %s: %s", path, error.message)
            problems.append(SettingsProblem(path, error.message))
    return models, problems


def _is_environment(folder: Path) -> bool:
    return any((folder / mark).exists() for mark in _ENVIRONMENT_MARKS)
