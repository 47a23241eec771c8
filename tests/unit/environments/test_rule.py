"""The one rule for a model's environment (explicit → conda file → requirements.txt), a
tarball's source record, and the same rule in image plans (the single-model folder too)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mlpack.environments.files import (
    SOURCE_RECORD,
    check_fresh,
    choose_environment,
    read_source_record,
)
from mlpack.environments.pack import pack_requirements
from mlpack.errors import BuildError, InvalidEnvironment
from mlpack.packaging.plan import plan_image

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "multi-env"


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real `mlpack env pack` tarball of a requirements file that installs nothing."""
    folder = tmp_path_factory.mktemp("packed")
    (folder / "requirements.txt").write_text("# nothing to install\n")
    return pack_requirements(folder / "requirements.txt", folder / "environment.tar.gz")


def _model(folder: Path, parameters: dict[str, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    settings = {"name": folder.name, "implementation": "models.TableModel"}
    if parameters:
        settings["parameters"] = parameters  # type: ignore[assignment]
    (folder / "model-settings.json").write_text(json.dumps(settings))
    return folder


def test_order_explicit_then_conda_then_requirements(tmp_path: Path, packed: Path) -> None:
    folder = _model(tmp_path / "m")
    assert choose_environment(folder) is None
    (folder / "requirements.txt").write_text("# nothing to install\n")  # as `packed` was
    choice = choose_environment(folder)
    assert choice is not None and (choice.kind, choice.source.name) == (
        "requirements",
        "requirements.txt",
    )
    (folder / "environment.yml").write_text("dependencies: [python=3.11]\n")
    choice = choose_environment(folder)
    assert choice is not None and (choice.kind, choice.source.name) == ("conda", "environment.yml")
    shutil.copy(packed, folder / "mine.tar.gz")
    choice = choose_environment(folder, tarball="mine.tar.gz")
    assert choice is not None and choice.kind == "tarball" and "parameters" in choice.reason
    choice = choose_environment(folder, tarball="mine.tar.gz", path="env")
    assert choice is not None and choice.kind == "path"


def test_tarball_records_its_source_and_stands_for_it(tmp_path: Path, packed: Path) -> None:
    record = read_source_record(packed)
    assert (
        record is not None and record["file"] == "requirements.txt" and len(record["sha256"]) == 64
    )
    folder = tmp_path / "m"
    folder.mkdir()
    shutil.copy(packed.parent / "requirements.txt", folder / "requirements.txt")
    shutil.copy(packed, folder / "environment.tar.gz")
    choice = choose_environment(folder)
    assert choice is not None and choice.kind == "tarball" and "unchanged" in choice.reason


def test_tarball_older_than_its_source_is_refused(tmp_path: Path, packed: Path) -> None:
    """The trap: an old environment.tar.gz silently beat an edited requirements.txt."""
    folder = tmp_path / "m"
    folder.mkdir()
    shutil.copy(packed, folder / "environment.tar.gz")
    (folder / "requirements.txt").write_text("tabulate==0.9.0\n")  # edited since packing
    with pytest.raises(InvalidEnvironment, match=r"older than .*requirements\.txt.*re-pack"):
        choose_environment(folder)
    with pytest.raises(InvalidEnvironment, match="older than"):
        choose_environment(folder, tarball="environment.tar.gz")
    with pytest.raises(InvalidEnvironment, match="older than"):
        check_fresh(folder / "environment.tar.gz", folder)
    # Without its source file next to it the tarball is all there is: used.
    (folder / "requirements.txt").unlink()
    choice = choose_environment(folder)
    assert choice is not None and choice.kind == "tarball"


def test_unrecorded_tarball_next_to_a_file_is_ambiguous(tmp_path: Path) -> None:
    import tarfile

    folder = tmp_path / "m"
    folder.mkdir()
    with tarfile.open(folder / "environment.tar.gz", "w:gz"):
        pass
    (folder / "requirements.txt").write_text("tabulate\n")
    with pytest.raises(InvalidEnvironment, match="records no source"):
        choose_environment(folder)


def test_single_model_folder_plans_its_environment(tmp_path: Path, packed: Path) -> None:
    """The trap: `mlpack build` ignored environment.tar.gz / environment.yml in the folder
    `mlpack init` makes (the served folder is the model)."""
    folder = tmp_path / "single"
    shutil.copytree(EXAMPLE / "table_old", folder)
    (folder / "requirements.txt").unlink()
    shutil.copy(packed, folder / "environment.tar.gz")
    plan = plan_image(folder, "base:1")
    assert [(m.folder, m.environment is not None) for m in plan.models] == [(".", True)]
    assert [(e.kind, e.source.name) for e in plan.environments] == [
        ("tarball", "environment.tar.gz")
    ]
    assert plan.root_requirements is None

    (folder / "environment.tar.gz").unlink()
    (folder / "requirements.txt").write_text("tabulate==0.8.10\n")
    plan = plan_image(folder, "base:1")
    assert plan.environments == () and plan.root_requirements == folder / "requirements.txt"

    (folder / "environment.yml").write_text("dependencies: [python=3.11]\n")
    with pytest.raises(BuildError, match="conda, mamba or micromamba"):
        plan_image(folder, "base:1")


def test_build_refuses_a_stale_tarball(tmp_path: Path, packed: Path) -> None:
    folder = tmp_path / "served"
    shutil.copytree(EXAMPLE, folder)
    shutil.copy(packed, folder / "table_old" / "environment.tar.gz")
    (folder / "table_old" / "requirements.txt").write_text("tabulate==0.8.10\n")
    with pytest.raises(BuildError, match=r"table-old.*older than"):
        plan_image(folder, "base:1")


def test_record_is_the_first_member(packed: Path) -> None:
    import tarfile

    with tarfile.open(packed) as archive:
        assert archive.getmembers()[0].name == SOURCE_RECORD


def test_an_mlflow_model_folder_is_served_by_the_servers_environment(tmp_path: Path) -> None:
    """MLflow's conda.yaml/requirements.txt record training; only an explicit choice applies."""
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    (tmp_path / "conda.yaml").write_text("dependencies: [python=3.11]\n")
    (tmp_path / "requirements.txt").write_text("mlflow==3.0\n")
    assert choose_environment(tmp_path) is None
    named = choose_environment(tmp_path, tarball="env.tar.gz")
    assert named is not None and named.kind == "tarball"


def test_an_mlflow_folder_asked_for_its_environment_uses_mlflows_files(tmp_path: Path) -> None:
    """parameters.mlflow_environment: requirements.txt, else conda.yaml, else a clear error."""
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    (tmp_path / "conda.yaml").write_text("dependencies: [python=3.11]\n")
    (tmp_path / "requirements.txt").write_text("mlflow==3.0\n")
    chosen = choose_environment(tmp_path, mlflow_environment=True)
    assert chosen is not None and chosen.kind == "requirements"
    assert chosen.source == tmp_path / "requirements.txt" and "mlflow_environment" in chosen.reason
    assert chosen.provided == ("mlflow", "mlflow-skinny")
    (tmp_path / "requirements.txt").unlink()
    chosen = choose_environment(tmp_path, mlflow_environment=True)
    assert chosen is not None and chosen.kind == "conda" and chosen.source.name == "conda.yaml"
    (tmp_path / "conda.yaml").unlink()
    with pytest.raises(InvalidEnvironment, match=r"no requirements\.txt or conda\.yaml"):
        choose_environment(tmp_path, mlflow_environment=True)
    # An explicit environment still wins; other folders ignore the flag.
    named = choose_environment(tmp_path, tarball="env.tar.gz", mlflow_environment=True)
    assert named is not None and named.kind == "tarball"
    plain = tmp_path / "plain"
    plain.mkdir()
    assert choose_environment(plain, mlflow_environment=True) is None


def test_packages_the_server_provides_are_not_installed_again() -> None:
    from importlib import metadata

    from mlpack.environments.requirements import without_provided

    have = metadata.version("pydantic")
    text = f"pydantic=={have}\npydantic-twin>={have}\npydantic<0.0.1\nnumpy\n-r other.txt\n"
    kept = without_provided(text, ("pydantic-twin", "pydantic"))
    lines = kept.splitlines()
    assert all(line.startswith("# pydantic") for line in lines[:2])
    assert "provided by the server" in lines[0]
    assert lines[2:] == ["pydantic<0.0.1", "numpy", "-r other.txt"]
    assert without_provided(text, ()) == text
    assert without_provided(text, ("absent-package",)) == text
