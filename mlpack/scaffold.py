"""``mlpack init``'s logic: list the project templates, render one, write it to a folder.

Pure functions over files; the CLI (``mlpack/cli/init.py``) only gathers answers.
A template is a folder ``templates/init/<name>/`` holding ``template.json``
(``description``, ``artefact``, ``train``, the README's example ``request`` and the
``answer`` it should get) and the project's files. Names ending in ``.j2`` are rendered
by Jinja2 and lose that suffix; other files are copied as they are. Files in
``templates/init/_common/`` go into every project unless the template has a file of the
same name; names starting with ``_`` are partials (included, never written).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._version import __version__
from .distribution import DISTRIBUTION, install_source
from .errors import ScaffoldError as ScaffoldError  # defined in the error tree; re-exported
from .templating import INIT_FOLDER, template_environment, template_root

COMMON = "_common"
METADATA_FILE = "template.json"
DEFAULT_TEMPLATE = "custom"
DEFAULT_NAME = "my-model"
DEFAULT_MAX_BATCH_SIZE = 32
DEFAULT_MAX_BATCH_TIME = 0.005
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class ProjectTemplate:
    """One ``mlpack init`` template."""

    name: str
    description: str
    folder: Path
    request: dict[str, Any]
    answer: str
    artefact: str | None = None
    train: bool = False


@dataclass(frozen=True)
class ProjectOptions:
    """The answers that shape a generated project."""

    template: str = DEFAULT_TEMPLATE
    name: str = DEFAULT_NAME
    batching: bool = False
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_batch_time: float = DEFAULT_MAX_BATCH_TIME


def list_templates() -> list[ProjectTemplate]:
    """Every bundled template, sorted by name (``custom`` first)."""
    root = template_root() / INIT_FOLDER
    templates = []
    for folder in sorted(root.iterdir()):
        metadata_file = folder / METADATA_FILE
        if not metadata_file.is_file():
            continue
        metadata = json.loads(metadata_file.read_text(encoding="utf-8"))
        templates.append(
            ProjectTemplate(
                name=folder.name,
                description=metadata["description"],
                folder=folder,
                request=metadata["request"],
                answer=metadata["answer"],
                artefact=metadata.get("artefact"),
                train=bool(metadata.get("train", False)),
            )
        )
    templates.sort(key=lambda t: (t.name != DEFAULT_TEMPLATE, t.name))
    return templates


def get_template(name: str) -> ProjectTemplate:
    """The template called ``name`` (``ScaffoldError`` if there is none)."""
    templates = {template.name: template for template in list_templates()}
    try:
        return templates[name]
    except KeyError:
        raise ScaffoldError(
            f"unknown template '{name}' (available: {', '.join(templates)})"
        ) from None


def default_name(directory: Path) -> str:
    """A model name from a folder name: ``My Model!`` → ``my-model``."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", directory.resolve().name).strip("-._").lower()
    return slug or DEFAULT_NAME


def check_name(name: str) -> str:
    """``name`` if it can be a model name in a URL path, else ``ScaffoldError``."""
    if not _NAME.match(name):
        raise ScaffoldError(
            f"model name '{name}' must start with a letter or digit and hold only "
            "letters, digits, '-', '_' and '.'"
        )
    return name


def render_project(options: ProjectOptions) -> dict[str, str]:
    """The generated project: relative path → file content (nothing is written)."""
    template = get_template(options.template)
    check_name(options.name)
    environment = template_environment()
    context = {
        "name": options.name,
        "template": template.name,
        "description": template.description,
        "artefact": template.artefact,
        "train": template.train,
        "answer": template.answer,
        "request_json": json.dumps(template.request, indent=2),
        "request_line": json.dumps(template.request, separators=(",", ":")),
        "batching": options.batching,
        "max_batch_size": options.max_batch_size,
        "max_batch_time": options.max_batch_time,
        "mlpack_version": __version__,
        "distribution": DISTRIBUTION,
        "install_source": install_source(),
    }
    sources: dict[str, str] = {}
    for folder in (template_root() / INIT_FOLDER / COMMON, template.folder):
        for path in sorted(folder.rglob("*")):
            if _is_project_file(path):
                relative = path.relative_to(folder).as_posix()
                target = relative.removesuffix(".j2")
                sources[target] = f"{folder.name}/{relative}"
    return {
        target: (
            environment.get_template(source).render(context)
            if source.endswith(".j2")
            else (template_root() / INIT_FOLDER / source).read_text(encoding="utf-8")
        )
        for target, source in sorted(sources.items())
    }


def write_project(directory: Path, files: dict[str, str], force: bool = False) -> list[Path]:
    """Write ``files`` below ``directory``; refuse a non-empty folder unless ``force``."""
    if directory.exists() and not directory.is_dir():
        raise ScaffoldError(f"{directory} exists and is not a folder")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise ScaffoldError(
            f"{directory} is not empty; choose another folder or pass --force to write into it"
        )
    written = []
    for relative, content in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


def _is_project_file(path: Path) -> bool:
    """Rendered into projects: not metadata, not partials (``_name``), not caches."""
    return (
        path.is_file()
        and path.name != METADATA_FILE
        and not path.name.startswith("_")
        and "__pycache__" not in path.parts
    )
