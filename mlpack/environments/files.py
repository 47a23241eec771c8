"""Which environment a model uses: the one rule every command follows.

``mlpack start``, ``mlpack build``, ``mlpack dockerfile`` and ``mlpack env pack`` all ask
``choose_environment``, for every layout (a folder of models or the single-model folder
``mlpack init`` makes):

1. ``parameters.environment_path`` (an unpacked environment) or
   ``parameters.environment_tarball`` (a packed one) when the model names one;
2. otherwise a conda file (``environment.yml``, ``conda.yaml``, ...) in the model's folder;
3. otherwise its ``requirements.txt``.

A packed ``environment.tar.gz`` records the file it was packed from and that file's
sha256 (``SOURCE_RECORD``, written by ``mlpack env pack``). Next to that file it stands
for it (the same environment, already built); a tarball whose source file has changed
since is refused, with a message, wherever it is found: it would ship old versions.
A folder tarball that records no source is used only when no environment file is there.

An MLflow model folder (one holding ``MLmodel``) carries ``conda.yaml``/``requirements.txt``
as MLflow's record of where the model was trained, not as a request for an environment:
steps 2 and 3 skip it, so it is served by the server's environment unless the model names
one explicitly (step 1) or asks for MLflow's own (``parameters.mlflow_environment``): then
its ``requirements.txt`` describes the environment (less the ``mlflow`` pin when the
server's MLflow is that version: the server provides the runtime), or, without one, its
``conda.yaml`` (built only where conda exists). MLflow's ``python_env.yaml`` only points
at that same ``requirements.txt`` (the Python version is the server's, checked when the
environment is made).
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import InvalidEnvironment

REQUIREMENTS_FILES = ("requirements.txt",)
CONDA_FILES = ("environment.yml", "environment.yaml", "conda.yaml", "conda.yml")
TARBALL_FILES = ("environment.tar.gz",)
# MLflow writes its environment files next to this; they describe training, not serving.
MLFLOW_MODEL_FILE = "MLmodel"
MLFLOW_REQUIREMENTS = "requirements.txt"
MLFLOW_CONDA = "conda.yaml"
# MLflow pins itself in a model's requirements.txt; the server running the model provides it.
MLFLOW_PROVIDED = ("mlflow", "mlflow-skinny")
# Inside a packed tarball: {"file": "requirements.txt", "sha256": "..."}.
SOURCE_RECORD = "mlpack-source.json"

EnvironmentKind = Literal["requirements", "conda", "tarball", "path"]


@dataclass(frozen=True)
class EnvironmentChoice:
    """The environment a model uses, and why (for logs and messages)."""

    kind: EnvironmentKind
    source: Path
    reason: str
    # Packages the serving side provides: not installed when the server's version fits.
    provided: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for logs: what is used and which rule chose it."""
        return f"{self.kind} {self.source} ({self.reason})"


def choose_environment(
    folder: Path,
    tarball: str | None = None,
    path: str | None = None,
    mlflow_environment: bool = False,
) -> EnvironmentChoice | None:
    """The environment of the model in ``folder`` by the one rule, or None (the server's own).

    ``mlflow_environment``: an MLflow model folder's own environment files apply.
    Raises ``InvalidEnvironment`` for a tarball older than the file it was packed from,
    and for an MLflow folder asked for its environment that records none.
    """
    if path:
        return EnvironmentChoice("path", (folder / path).resolve(), "parameters.environment_path")
    if tarball:
        packed = (folder / tarball).resolve()
        if packed.is_file():
            check_fresh(packed, folder)
        return EnvironmentChoice("tarball", packed, "parameters.environment_tarball")
    if records_training_environment(folder):
        return mlflow_choice(folder) if mlflow_environment else None
    described = _first(folder, CONDA_FILES) or _first(folder, REQUIREMENTS_FILES)
    packed_here = _first(folder, TARBALL_FILES)
    if described is None:
        if packed_here is None:
            return None
        check_fresh(packed_here, folder)
        return EnvironmentChoice("tarball", packed_here, f"{packed_here.name} in the model folder")
    kind: EnvironmentKind = "conda" if described.name in CONDA_FILES else "requirements"
    if packed_here is not None:
        record = read_source_record(packed_here)
        if record is None:
            raise InvalidEnvironment(
                f"{packed_here} records no source file and {described.name} is next to it: "
                "name the one to use "
                f'("parameters": {{"environment_tarball": "{packed_here.name}"}}) '
                "or remove the other"
            )
        check_fresh(packed_here, folder, record)
        if record.get("file") == described.name:
            return EnvironmentChoice(
                "tarball", packed_here, f"packed from {described.name}, which is unchanged"
            )
    return EnvironmentChoice(kind, described, f"{described.name} in the model folder")


def mlflow_choice(folder: Path) -> EnvironmentChoice:
    """An MLflow folder's own environment: ``requirements.txt``, else ``conda.yaml``."""
    reason = "the MLflow model's {}, parameters.mlflow_environment"
    requirements = folder / MLFLOW_REQUIREMENTS
    if requirements.is_file():
        return EnvironmentChoice(
            "requirements", requirements, reason.format(requirements.name), MLFLOW_PROVIDED
        )
    conda = folder / MLFLOW_CONDA
    if conda.is_file():
        return EnvironmentChoice("conda", conda, reason.format(conda.name))
    raise InvalidEnvironment(
        f"{folder} is an MLflow model folder with no {MLFLOW_REQUIREMENTS} or {MLFLOW_CONDA}, "
        "and parameters.mlflow_environment asks for its environment: save the model with "
        "MLflow's pip_requirements (or add the file), or drop mlflow_environment"
    )


def records_training_environment(folder: Path) -> bool:
    """Whether ``folder``'s environment files are MLflow's record of training (``MLmodel``)."""
    return (folder / MLFLOW_MODEL_FILE).is_file()


def source_record(source: Path) -> dict[str, str]:
    """The record a tarball packed from ``source`` carries."""
    return {"file": source.name, "sha256": _sha256(source)}


def read_source_record(tarball: Path) -> dict[str, str] | None:
    """The source record inside ``tarball``, or None when it has none (e.g. made elsewhere)."""
    try:
        with tarfile.open(tarball, "r|*") as archive:
            for member in archive:
                if member.name.lstrip("./") == SOURCE_RECORD and member.isfile():
                    stream = archive.extractfile(member)
                    if stream is None:
                        return None
                    value = json.loads(stream.read(65536))
                    return value if isinstance(value, dict) else None
    except (tarfile.TarError, OSError, ValueError) as error:
        raise InvalidEnvironment(f"{tarball} is not a readable tarball: {error}") from None
    return None


def check_fresh(tarball: Path, folder: Path, record: dict[str, str] | None = None) -> None:
    """Refuse ``tarball`` when the file it was packed from, in ``folder``, has changed since."""
    record = record if record is not None else read_source_record(tarball)
    if not record or not isinstance(record.get("file"), str):
        return
    source = folder / Path(record["file"]).name
    if source.is_file() and _sha256(source) != record.get("sha256"):
        raise InvalidEnvironment(
            f"{tarball} is older than {source}, which it was packed from and which has changed "
            f"since: re-pack it (mlpack env pack {folder}) or delete it"
        )


def environment_kind(source: Path) -> EnvironmentKind:
    """What kind of environment ``source`` describes (anything else is a packed tarball)."""
    if source.name in REQUIREMENTS_FILES:
        return "requirements"
    if source.name in CONDA_FILES:
        return "conda"
    return "tarball"


def _first(folder: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
