"""mlpack: serve, package and batch-run models over the Open Inference Protocol.

Public names are imported lazily so ``import mlpack`` (and ``mlpack --help``) stays fast.
"""

from __future__ import annotations

import typing as _typing

from ._version import __version__

if _typing.TYPE_CHECKING:
    from .custom_metrics import log, register
    from .model import MLModel
    from .settings import ModelSettings, Settings
    from .tracing import tracer

__all__ = [
    "MLModel",
    "ModelSettings",
    "Settings",
    "__version__",
    "codecs",
    "errors",
    "log",
    "register",
    "tracer",
    "types",
]

_LAZY = {
    "MLModel": ("mlpack.model", "MLModel"),
    "Settings": ("mlpack.settings", "Settings"),
    "ModelSettings": ("mlpack.settings", "ModelSettings"),
    "register": ("mlpack.custom_metrics", "register"),
    "log": ("mlpack.custom_metrics", "log"),
    "tracer": ("mlpack.tracing", "tracer"),
    "types": ("mlpack.types", None),
    "codecs": ("mlpack.codecs", None),
    "errors": ("mlpack.errors", None),
}


def __getattr__(name: str) -> _typing.Any:
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'mlpack' has no attribute {name!r}") from None
    import importlib

    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value
