"""Plan an image from a model folder: which models, which environments, which ports.

``plan_image`` reads the folder (through ``mlpack.settings``) and returns a frozen
``ImagePlan``: everything the Dockerfile depends on is decided here, before anything
renders or stages it, so ``mlpack dockerfile`` and ``mlpack build`` see the same plan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..engine.repository import discover_models
from ..environments.files import EnvironmentKind, environment_kind, find_environment_file
from ..environments.pack import BuildError
from ..settings import SETTINGS_FILENAME, Settings

DEFAULT_BASE_IMAGE = "python:3.11-slim-bookworm"
PREFIX = "/opt/mlpack"
UID = 1000


@dataclass(frozen=True)
class PlannedEnvironment:
    """One model environment built into the image (at ``prefix``, named by ``key``)."""

    key: str
    kind: EnvironmentKind
    source: Path  # requirements.txt / environment.yml / environment.tar.gz on the host
    models: tuple[str, ...]

    @property
    def prefix(self) -> str:
        """Where the environment lives in the image (conda and tarballs are unpacked there)."""
        return f"{PREFIX}/envs/{self.key}"

    @property
    def packed(self) -> bool:
        """Whether the image unpacks a tarball (conda environments arrive packed)."""
        return self.kind != "requirements"


@dataclass(frozen=True)
class PlannedModel:
    """One model served by the image."""

    name: str
    folder: str  # relative to the served folder, "." for the folder itself
    environment: Optional[PlannedEnvironment] = None


@dataclass(frozen=True)
class ImagePlan:
    """Everything the Dockerfile depends on (final: nothing changes it afterwards)."""

    folder: Path
    base_image: str
    models: tuple[PlannedModel, ...]
    environments: tuple[PlannedEnvironment, ...]
    root_requirements: Optional[Path]
    settings_file: Optional[str]
    http_port: int = 8080
    grpc_port: int = 8081
    metrics_port: int = 8082


def plan_image(folder: Path, base_image: str = DEFAULT_BASE_IMAGE) -> ImagePlan:
    """Find the models below ``folder`` and the environment each one brings."""
    folder = folder.resolve()
    settings_path = folder / SETTINGS_FILENAME
    settings = Settings.from_file(settings_path if settings_path.is_file() else None)
    root = (folder / settings.model_repository_root).resolve()
    found, problems = discover_models(root)
    if problems:
        raise BuildError("; ".join(f"{p.path}: {p.reason}" for p in problems))
    if not found:
        raise BuildError(f"no model-settings.json found below {root}")
    models: list[PlannedModel] = []
    environments: list[PlannedEnvironment] = []
    for model in found:
        model_folder = Path(model.folder or root)
        relative = model_folder.relative_to(folder).as_posix()
        environment = None
        source = _environment_source(
            model_folder, model.parameters.environment_tarball, model_folder == folder
        )
        if source is not None:
            kind = environment_kind(source)
            if kind == "tarball" and not source.is_file():
                raise BuildError(f"model '{model.name}': environment tarball {source} not found")
            environment = PlannedEnvironment(_slug(relative), kind, source, (model.name,))
            environments.append(environment)
        models.append(PlannedModel(model.name, relative, environment))
    root_requirements = folder / "requirements.txt"
    return ImagePlan(
        folder=folder,
        base_image=base_image,
        models=tuple(models),
        environments=tuple(environments),
        root_requirements=root_requirements if root_requirements.is_file() else None,
        settings_file=SETTINGS_FILENAME if settings_path.is_file() else None,
        http_port=settings.http_port,
        grpc_port=settings.grpc_port,
        metrics_port=settings.metrics_port,
    )


def _environment_source(
    model_folder: Path, tarball: Optional[str], is_root: bool
) -> Optional[Path]:
    if tarball:
        return (model_folder / tarball).resolve()
    if is_root:
        return None  # the served folder's own requirements.txt is image-wide
    return find_environment_file(model_folder)


def _slug(relative: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", relative).strip("-.") or "root"
