from __future__ import annotations

from pathlib import Path

import pytest

from mlpack.engine.importer import import_implementation
from mlpack.errors import ModelLoadError


def make_model_folder(root: Path, name: str, value: str) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "helper.py").write_text(f"VALUE = {value!r}\n")
    (folder / "models.py").write_text("from helper import VALUE\nclass Model:\n    value = VALUE\n")
    return folder


def test_same_module_names_in_two_folders_do_not_collide(tmp_path: Path) -> None:
    a = import_implementation("models.Model", str(make_model_folder(tmp_path, "a", "A")))
    b = import_implementation("models.Model", str(make_model_folder(tmp_path, "b", "B")))
    assert (a.value, b.value) == ("A", "B")


def test_missing_module_and_attribute_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="module 'nowhere' not found"):
        import_implementation("nowhere.Model", str(tmp_path))
    folder = make_model_folder(tmp_path, "c", "C")
    with pytest.raises(ModelLoadError, match="has no 'Missing'"):
        import_implementation("models.Missing", str(folder))
    with pytest.raises(ModelLoadError, match="import path"):
        import_implementation("Model", str(folder))


def test_errors_inside_user_code_surface_unchanged(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "models.py").write_text("import not_installed_dependency\n")
    with pytest.raises(ModuleNotFoundError, match="not_installed_dependency"):
        import_implementation("models.Model", str(folder))


def test_mlserver_runtime_names_are_aliases() -> None:
    cls = import_implementation("mlserver_sklearn.SKLearnModel", None)
    assert cls.__name__ == "SKLearnModel" and cls.__module__.startswith("mlpack_sklearn")
