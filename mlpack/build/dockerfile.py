"""Plan an image from a model folder and render its Dockerfile and .dockerignore.

``plan_image`` reads the folder (models, their environment files, settings); the
``render_*`` functions are pure: the same plan always renders the same text, and they
need no Docker.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import jinja2

from .._version import __version__
from ..engine.repository import discover_models
from ..environments import file_digest
from ..settings import SETTINGS_FILENAME
from .envs import CONDA_FILES, REQUIREMENTS_FILES, TARBALL_FILES, BuildError

DEFAULT_BASE_IMAGE = "python:3.11-slim-bookworm"
PREFIX = "/opt/mlpack"
UID = 1000
TEMPLATES = Path(__file__).resolve().parents[1] / "_templates"

EnvironmentKind = Literal["requirements", "conda", "tarball"]


@dataclass
class PlannedEnvironment:
    """One model environment built into the image."""

    key: str
    kind: EnvironmentKind
    source: Path  # requirements.txt / environment.yml / environment.tar.gz on the host
    models: list[str] = field(default_factory=list)
    # For tarballs: the content hash naming the unpacked folder (set when staged).
    digest: Optional[str] = None

    @property
    def prefix(self) -> str:
        return f"{PREFIX}/envs/{self.digest[:32] if self.digest else self.key}"


@dataclass
class PlannedModel:
    """One model served by the image."""

    name: str
    folder: str  # relative to the served folder, "." for the folder itself
    environment: Optional[PlannedEnvironment] = None


@dataclass
class ImagePlan:
    """Everything the Dockerfile depends on."""

    folder: Path
    base_image: str
    models: list[PlannedModel]
    environments: list[PlannedEnvironment]
    root_requirements: Optional[Path]
    settings_file: Optional[str]
    http_port: int = 8080
    grpc_port: int = 8081
    metrics_port: int = 8082


def plan_image(folder: Path, base_image: str = DEFAULT_BASE_IMAGE) -> ImagePlan:
    """Find the models below ``folder`` and the environment each one brings."""
    folder = folder.resolve()
    settings_path = folder / SETTINGS_FILENAME
    settings = _read_json(settings_path) if settings_path.is_file() else {}
    root = (folder / str(settings.get("model_repository_root", "."))).resolve()
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
        planned = PlannedModel(model.name, relative)
        source = _environment_source(model_folder, model.parameters.environment_tarball, model_folder == folder)
        if source is not None:
            kind: EnvironmentKind = (
                "requirements" if source.name in REQUIREMENTS_FILES
                else "conda" if source.name in CONDA_FILES
                else "tarball"
            )
            if kind == "tarball" and not source.is_file():
                raise BuildError(f"model '{model.name}': environment tarball {source} not found")
            digest = file_digest(source) if kind == "tarball" else None
            planned.environment = PlannedEnvironment(_slug(relative), kind, source, [model.name], digest)
            environments.append(planned.environment)
        models.append(planned)
    root_requirements = folder / "requirements.txt"
    return ImagePlan(
        folder=folder,
        base_image=base_image,
        models=models,
        environments=environments,
        root_requirements=root_requirements if root_requirements.is_file() else None,
        settings_file=SETTINGS_FILENAME if settings_path.is_file() else None,
        http_port=int(settings.get("http_port", 8080)),
        grpc_port=int(settings.get("grpc_port", 8081)),
        metrics_port=int(settings.get("metrics_port", 8082)),
    )


def _environment_source(model_folder: Path, tarball: Optional[str], is_root: bool) -> Optional[Path]:
    if tarball:
        return (model_folder / tarball).resolve()
    if is_root:
        return None  # the served folder's own requirements.txt is image-wide
    for name in (*TARBALL_FILES, *REQUIREMENTS_FILES, *CONDA_FILES):
        if (model_folder / name).is_file():
            return model_folder / name
    return None


def render_dockerfile(plan: ImagePlan) -> str:
    """The Dockerfile for ``plan`` (conda environments arrive packed, as tarballs)."""
    environments = [
        {"key": env.key, "kind": "requirements" if env.kind == "requirements" else "tarball",
         "prefix": env.prefix, "models": env.models}
        for env in plan.environments
    ]
    return _environment().get_template("Dockerfile.j2").render(
        version=__version__,
        base_image=plan.base_image,
        prefix=PREFIX,
        uid=UID,
        environments=environments,
        models=plan.models,
        settings_file=plan.settings_file,
        http_port=plan.http_port,
        grpc_port=plan.grpc_port,
        metrics_port=plan.metrics_port,
    )


def render_dockerignore(plan: ImagePlan) -> str:
    return _environment().get_template("dockerignore.j2").render(version=__version__)


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )


def _slug(relative: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", relative).strip("-.") or "root"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise BuildError(f"{path}: {error}") from None
    return value if isinstance(value, dict) else {}
