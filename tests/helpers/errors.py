"""Every error class in the mlpack tree, with one instance each (for sweeping tests)."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import mlpack
from mlpack import errors

# Constructor arguments for classes whose __init__ is not ``(message)``.
_ARGUMENTS: dict[type[errors.MLPackError], tuple[Any, ...]] = {
    errors.ModelNotFound: ("m", "2"),
    errors.Overloaded: ("queue full", 3.0),
    errors.ServerError: (503, "busy", 2.0),
    errors.InvalidLine: ("not valid JSON", "r1"),
    errors.JobInterrupted: ("interrupted after 3 lines", {"done": 3}),
}


def import_everything() -> None:
    """Import every mlpack module, so subclasses defined anywhere are registered."""
    for module in pkgutil.walk_packages(mlpack.__path__, "mlpack."):
        if module.name.endswith("__main__"):
            continue
        importlib.import_module(module.name)


def error_classes() -> list[type[errors.MLPackError]]:
    """``MLPackError`` and all its subclasses, found by walking ``__subclasses__()``."""
    import_everything()
    found: list[type[errors.MLPackError]] = []
    stack = [errors.MLPackError]
    while stack:
        cls = stack.pop()
        if cls.__module__.split(".")[0] == "mlserver":
            continue  # mlpack.compat's copies of MLServer's own error classes (MLServer's API)
        if cls not in found:
            found.append(cls)
            stack.extend(cls.__subclasses__())
    return sorted(found, key=lambda cls: cls.__name__)


def sample(cls: type[errors.MLPackError]) -> errors.MLPackError:
    """One instance of ``cls`` (a class with a new constructor needs an entry above)."""
    return cls(*_ARGUMENTS.get(cls, (f"{cls.__name__} happened",)))


def samples() -> list[errors.MLPackError]:
    return [sample(cls) for cls in error_classes()]
