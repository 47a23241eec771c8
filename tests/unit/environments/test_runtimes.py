"""The one list of built-in runtimes agrees with pyproject.toml, the sources and the importer."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from mlpack.engine.importer import IMPLEMENTATION_ALIASES
from mlpack.engine.workers.interpreters import _SHIMMED
from mlpack.environments.runtimes import BUILTIN_RUNTIMES, runtime_packages

REPO = Path(__file__).resolve().parents[3]


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_pyproject_packages_the_builtin_runtimes() -> None:
    config = _pyproject()["tool"]
    find = config["setuptools"]["packages"]["find"]
    folders = [f"runtimes/{runtime.folder}" for runtime in BUILTIN_RUNTIMES]
    assert find["where"] == [".", *folders]
    assert find["include"] == ["mlpack*", *(f"{package}*" for package in runtime_packages())]
    assert config["pytest"]["ini_options"]["pythonpath"] == [".", *folders]


def test_every_runtime_folder_is_listed_and_defines_its_class() -> None:
    on_disk = sorted(
        p.name
        for p in (REPO / "runtimes").iterdir()
        if (p / "pyproject.toml").is_file() or any(p.glob("mlpack_*/__init__.py"))
    )
    assert on_disk == sorted(runtime.folder for runtime in BUILTIN_RUNTIMES)
    for runtime in BUILTIN_RUNTIMES:
        package = REPO / "runtimes" / runtime.folder / runtime.package
        defined = set()
        for source in package.glob("*.py"):
            tree = ast.parse(source.read_text())
            defined |= {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
            defined |= {
                alias.asname or alias.name
                for node in tree.body
                if isinstance(node, ast.ImportFrom)
                for alias in node.names
            }
        assert runtime.model_class in defined, f"{package} does not define {runtime.model_class}"


def test_consumers_derive_from_the_list() -> None:
    assert set(runtime_packages()) <= set(_SHIMMED)
    assert {
        runtime.mlserver_implementation: runtime.implementation for runtime in BUILTIN_RUNTIMES
    } == IMPLEMENTATION_ALIASES
