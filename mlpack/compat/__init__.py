"""MLServer compatibility: unmodified MLServer models import ``mlserver`` and get mlpack.

A meta-path finder, appended *last* to ``sys.meta_path``, answers only for names no
other finder found: ``mlserver`` (and its submodules, from the shim package in
``_shims/``) and MLServer's runtime packages (``mlserver_sklearn`` → ``mlpack_sklearn``,
see ``RUNTIME_PACKAGES``). A real MLServer installation is therefore never shadowed, and
while one is importable nothing is aliased at all. ``MLPACK_MLSERVER_COMPAT=0`` (setting
``mlserver_compat``) turns the layer off.
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

SHIMS_DIR = str(Path(__file__).resolve().parent / "_shims")
COMPAT_ENV = "MLPACK_MLSERVER_COMPAT"

# ---- MLServer runtime package → the mlpack package that replaces it --------------------
# mlflow and huggingface runtimes are built separately (issue 23); their names are
# aliased only when those packages are importable.
RUNTIME_PACKAGES: dict[str, str] = {
    "mlserver_sklearn": "mlpack_sklearn",
    "mlserver_xgboost": "mlpack_xgboost",
    "mlserver_lightgbm": "mlpack_lightgbm",
    "mlserver_onnx": "mlpack_onnx",
    "mlserver_mlflow": "mlpack_mlflow",
    "mlserver_huggingface": "mlpack_huggingface",
}
# -----------------------------------------------------------------------------------------


def compat_enabled(environ: Mapping[str, str]) -> bool:
    """False when ``MLPACK_MLSERVER_COMPAT`` says off (0/false/no/off)."""
    return environ.get(COMPAT_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def install_mlserver_compat(environ: Mapping[str, str] | None = None) -> bool:
    """Append the finder (once) unless turned off; True when it is installed."""
    if not compat_enabled(os.environ if environ is None else environ):
        return False
    if not any(isinstance(finder, MLServerCompatFinder) for finder in sys.meta_path):
        sys.meta_path.append(MLServerCompatFinder())
    return True


def uninstall_mlserver_compat() -> None:
    """Remove the finder and every module it provided (tests)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, MLServerCompatFinder)]
    for name in list(sys.modules):
        module = sys.modules[name]
        if getattr(module, "__mlpack_compat__", False):
            del sys.modules[name]


def real_mlserver_installed() -> bool:
    """Whether any finder other than ours can import ``mlserver``."""
    module = sys.modules.get("mlserver")
    if module is not None:
        return not getattr(module, "__mlpack_compat__", False)
    return _find_elsewhere("mlserver") is not None


def _find_elsewhere(name: str) -> importlib.machinery.ModuleSpec | None:
    for finder in sys.meta_path:
        if isinstance(finder, MLServerCompatFinder):
            continue
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        spec = find_spec(name, None)
        if spec is not None:
            return spec  # type: ignore[no-any-return]
    return None


class MLServerCompatFinder(importlib.abc.MetaPathFinder):
    """Finds ``mlserver`` and ``mlserver_*`` runtimes when nothing else does."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if "." in fullname or not fullname.startswith("mlserver"):
            return None  # submodules of the shim are found through its __path__
        if real_mlserver_installed():
            return None
        if fullname == "mlserver":
            return importlib.machinery.PathFinder.find_spec(fullname, [SHIMS_DIR])
        replacement = RUNTIME_PACKAGES.get(fullname)
        if replacement is None or importlib.util.find_spec(replacement) is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(replacement))


_ASYNC_IN_MLSERVER = ("load", "predict", "unload")


def _mlserver_shaped(value: object, module_name: str) -> object:
    """A runtime class whose ``load``/``predict``/``unload`` are coroutines, as in MLServer.

    mlpack's runtimes may define them as plain functions (cheaper to call); MLServer code
    that subclasses a runtime does ``await super().predict(payload)``, so the MLServer
    name gets a subclass with awaitable wrappers.
    """
    from mlpack.model import MLModel

    if not (isinstance(value, type) and issubclass(value, MLModel)):
        return value
    wrappers: dict[str, object] = {}
    for method in _ASYNC_IN_MLSERVER:
        function = getattr(value, method)
        if not inspect.iscoroutinefunction(function):
            wrappers[method] = _awaitable(function)
    if not wrappers:
        return value
    return type(
        value.__name__, (value,), {**wrappers, "__module__": module_name, "__doc__": value.__doc__}
    )


def _awaitable(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    async def method(self: Any, *args: Any) -> Any:
        return function(self, *args)

    return method


class _AliasLoader(importlib.abc.Loader):
    """Makes ``mlserver_x`` a module holding the public names of ``mlpack_x``."""

    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        target = importlib.import_module(self.target)
        names = getattr(target, "__all__", None) or [
            n for n in vars(target) if not n.startswith("_")
        ]
        for name in names:
            setattr(module, name, _mlserver_shaped(getattr(target, name), module.__name__))
        module.__all__ = list(names)  # type: ignore[attr-defined]
        module.__doc__ = f"MLServer name for {self.target} (mlpack compatibility layer)."
        module.__mlpack_compat__ = True  # type: ignore[attr-defined]
