"""Resolve a model's ``implementation`` import string to a class.

``"models.MyModel"`` is looked up in the model's own folder first (``models.py`` or
``models/``), imported under a name unique to that folder so two models that each
ship a ``models.py`` never collide; anything else is a normal import
(e.g. ``mlpack_sklearn.SKLearnModel``). MLServer's runtime names are accepted as aliases.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

from ..compat import install_mlserver_compat
from ..environments.runtimes import implementation_aliases
from ..errors import ModelLoadError

# MLServer implementation names → mlpack's built-in runtimes.
IMPLEMENTATION_ALIASES = implementation_aliases()

_import_lock = threading.Lock()


def import_implementation(implementation: str, folder: str | None) -> type[Any]:
    """Return the class named by ``implementation``, importing from ``folder`` first."""
    implementation = IMPLEMENTATION_ALIASES.get(implementation, implementation)
    install_mlserver_compat()  # `import mlserver` in model code (unless off or MLServer is here)
    module_path, _, attribute = implementation.rpartition(".")
    if not module_path or not attribute:
        raise ModelLoadError(
            f"implementation '{implementation}' must be an import path like 'models.MyModel'"
        )
    with _import_lock:
        module = _import_local(module_path, folder) if folder else None
        if module is None:
            try:
                module = importlib.import_module(module_path)
            except ModuleNotFoundError as error:
                if error.name and module_path.startswith(error.name):
                    where = f" (looked in {folder} and on sys.path)" if folder else ""
                    raise ModelLoadError(
                        f"implementation '{implementation}': "
                        f"module '{module_path}' not found{where}"
                    ) from None
                raise
    try:
        return getattr(module, attribute)  # type: ignore[no-any-return]
    except AttributeError:
        raise ModelLoadError(
            f"implementation '{implementation}': module '{module_path}' has no '{attribute}'"
        ) from None


def _import_local(module_path: str, folder: str) -> ModuleType | None:
    """Import ``module_path`` from ``folder`` under a folder-unique module name."""
    parts = module_path.split(".")
    base = Path(folder)
    candidate = base.joinpath(*parts)
    if candidate.with_suffix(".py").is_file():
        location, is_package = candidate.with_suffix(".py"), False
    elif (candidate / "__init__.py").is_file():
        location, is_package = candidate / "__init__.py", True
    else:
        return None
    digest = hashlib.sha1(str(base.resolve()).encode()).hexdigest()[:12]
    unique_name = f"_mlpack_models_{digest}.{module_path}"
    if unique_name in sys.modules:
        return sys.modules[unique_name]
    _ensure_parent_packages(unique_name)
    spec = importlib.util.spec_from_file_location(
        unique_name,
        location,
        submodule_search_locations=[str(location.parent)] if is_package else None,
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique_name] = module
    # The folder joins sys.path while the module runs, so its own helper modules import;
    # helpers imported from the folder are then dropped from sys.modules, so another
    # model's helper of the same name is imported afresh from its own folder.
    before = set(sys.modules)
    sys.path.insert(0, str(base))
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(unique_name, None)
        raise
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(base))
        _forget_folder_modules(set(sys.modules) - before - {unique_name}, base)
    return module


def _forget_folder_modules(names: set[str], folder: Path) -> None:
    root = str(folder.resolve())
    for name in names:
        location = getattr(sys.modules.get(name), "__file__", None) or ""
        if location and str(Path(location).resolve()).startswith(root + "/"):
            del sys.modules[name]


def _ensure_parent_packages(unique_name: str) -> None:
    parts = unique_name.split(".")[:-1]
    for index in range(1, len(parts) + 1):
        name = ".".join(parts[:index])
        if name not in sys.modules:
            package = ModuleType(name)
            package.__path__ = []
            sys.modules[name] = package
