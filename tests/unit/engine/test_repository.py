"""Model discovery: which folders are searched for ``model-settings.json``."""

from __future__ import annotations

import json
from pathlib import Path

from mlpack.engine.repository import discover_models


def _model(folder: Path, name: str) -> None:
    folder.mkdir(parents=True)
    (folder / "model-settings.json").write_text(
        json.dumps({"name": name, "implementation": "models.Model"})
    )


def test_a_model_folder_called_envs_is_served(tmp_path: Path) -> None:
    _model(tmp_path / "envs", "envs")
    _model(tmp_path / "iris", "iris")
    models, problems = discover_models(tmp_path)
    assert sorted(m.name for m in models) == ["envs", "iris"] and not problems


def test_python_environments_are_never_searched(tmp_path: Path) -> None:
    """A venv, a conda prefix or an unpacked tarball can hold a stray model-settings.json."""
    _model(tmp_path / "iris", "iris")
    for folder, mark in (
        ("venv1", "pyvenv.cfg"),
        ("conda1", "conda-meta"),
        ("store/abc", ".mlpack-environment.json"),
    ):
        _model(tmp_path / folder / "lib" / "pkg", f"stray-{mark}")
        if mark == "conda-meta":
            (tmp_path / folder / mark).mkdir()
        else:
            (tmp_path / folder / mark).write_text("{}")
    models, _ = discover_models(tmp_path)
    assert [m.name for m in models] == ["iris"]
