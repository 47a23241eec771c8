"""The public surface: ``mlpack.__all__`` is complete and each name is the documented object.

In the style of httpx's ``tests/test_exported_members.py``.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import mlpack

README = Path(__file__).resolve().parents[2] / "README.md"

# Each public name → where it is defined (what the README and docstrings call it).
DOCUMENTED = {
    "MLModel": "mlpack.model:MLModel",
    "Settings": "mlpack.settings:Settings",
    "ModelSettings": "mlpack.settings:ModelSettings",
    "log": "mlpack.custom_metrics:log",
    "register": "mlpack.custom_metrics:register",
    "tracer": "mlpack.tracing:tracer",
    "types": "mlpack.types",
    "codecs": "mlpack.codecs",
    "errors": "mlpack.errors",
    "__version__": "mlpack._version:__version__",
}


def _resolve(target: str) -> object:
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module


def test_all_lists_exactly_the_documented_names() -> None:
    assert sorted(mlpack.__all__) == sorted(DOCUMENTED)


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_each_name_is_the_documented_object(name: str) -> None:
    assert getattr(mlpack, name) is _resolve(DOCUMENTED[name])


def test_no_public_name_is_missing_from_all() -> None:
    """After every lazy name is resolved, nothing public sits outside ``__all__``."""
    code = (
        "import json, types, mlpack\n"
        "for name in mlpack.__all__: getattr(mlpack, name)\n"
        "print(json.dumps(sorted(n for n, v in vars(mlpack).items()\n"
        "    if not n.startswith('_') and not (isinstance(v, types.ModuleType)\n"
        "    and n not in mlpack.__all__))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    public = set(json.loads(result.stdout)) - {"annotations"}  # the __future__ feature
    assert public == set(mlpack.__all__) - {"__version__"}


def test_unknown_name_is_a_clear_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'mlpack' has no attribute 'nope'"):
        _ = mlpack.nope  # type: ignore[attr-defined]


def test_version_is_the_installed_distribution() -> None:
    from mlpack.distribution import DISTRIBUTION

    assert DISTRIBUTION == "mlpack-serve"  # not PyPI's unrelated `mlpack`
    assert mlpack.__version__ == metadata.version(DISTRIBUTION)


def test_every_import_the_readme_shows_works() -> None:
    text = README.read_text()
    found = re.findall(r"from (mlpack[\w.]*) import (\w+(?:,\s*\w+)*)", text)
    assert len(found) >= 4, found
    for module_name, names in found:
        module = importlib.import_module(module_name)
        for name in (n.strip() for n in names.split(",")):
            assert hasattr(module, name), f"README: from {module_name} import {name}"
            exported = getattr(module, "__all__", None)
            if exported is not None:
                assert name in exported, f"{module_name}.__all__ lacks {name}"


@pytest.mark.parametrize("module_name", ["mlpack.types", "mlpack.codecs", "mlpack.client"])
def test_public_submodules_export_what_they_list(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{module_name}.{name}"


def test_import_does_no_heavy_work() -> None:
    heavy = ("numpy", "pydantic", "grpc", "docker")
    code = f"import sys, mlpack; print(any(m in sys.modules for m in {heavy!r}))"
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == "False"
