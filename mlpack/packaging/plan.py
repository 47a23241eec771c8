"""Plan an image from a model folder: which models, which environments, which ports.

``plan_image`` reads the folder (through ``mlpack.settings``) and returns a frozen
``ImagePlan``: everything the Dockerfile depends on is decided here, before anything
renders or stages it, so ``mlpack dockerfile`` and ``mlpack build`` see the same plan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..engine.repository import discover_models
from ..environments.files import EnvironmentChoice, EnvironmentKind, choose_environment
from ..environments.pack import BuildError, check_conda_route
from ..errors import InvalidEnvironment
from ..settings import SETTINGS_FILENAME, ModelParameters, Settings

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
    environment: PlannedEnvironment | None = None


@dataclass(frozen=True)
class ImagePlan:
    """Everything the Dockerfile depends on (final: nothing changes it afterwards)."""

    folder: Path
    base_image: str
    models: tuple[PlannedModel, ...]
    environments: tuple[PlannedEnvironment, ...]
    root_requirements: Path | None
    settings_file: str | None
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
        choice = _environment_choice(model.name, model_folder, model.parameters)
        is_root = model_folder == folder
        # The served folder's own requirements.txt is image-wide (the server's environment).
        if choice is not None and not (is_root and choice.kind == "requirements"):
            if choice.kind == "tarball" and not choice.source.is_file():
                raise BuildError(
                    f"model '{model.name}': environment tarball {choice.source} not found"
                )
            if choice.kind == "conda":
                check_conda_route()  # before any work: says what to install
            environment = PlannedEnvironment(
                _slug(relative), choice.kind, choice.source, (model.name,)
            )
            environments.append(environment)
        models.append(PlannedModel(model.name, relative, environment))
    # The served folder's requirements.txt is image-wide, unless the model there has its own
    # environment (then the file describes that environment, e.g. it was packed from it).
    root_requirements: Path | None = folder / "requirements.txt"
    if any(m.folder == "." and m.environment is not None for m in models):
        root_requirements = None
    return ImagePlan(
        folder=folder,
        base_image=base_image,
        models=tuple(models),
        environments=tuple(environments),
        root_requirements=root_requirements
        if root_requirements is not None and root_requirements.is_file()
        else None,
        settings_file=SETTINGS_FILENAME if settings_path.is_file() else None,
        http_port=settings.http_port,
        grpc_port=settings.grpc_port,
        metrics_port=settings.metrics_port,
    )


def _environment_choice(
    name: str, model_folder: Path, parameters: ModelParameters
) -> EnvironmentChoice | None:
    """The model's environment by the one rule; an unpacked ``environment_path`` is the
    image's business (it names a folder inside the image), so it plans nothing."""
    try:
        choice = choose_environment(
            model_folder,
            parameters.environment_tarball,
            parameters.environment_path,
            parameters.mlflow_environment,
        )
    except InvalidEnvironment as error:
        raise BuildError(f"model '{name}': {error.message}") from None
    return None if choice is None or choice.kind == "path" else choice


def _slug(relative: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", relative).strip("-.") or "root"
