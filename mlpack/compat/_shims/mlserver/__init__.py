"""``mlserver`` as provided by mlpack's compatibility layer (MLServer is not installed)."""

from mlpack._version import __version__
from mlpack.custom_metrics import log, register
from mlpack.model import MLModel
from mlpack.settings import ModelSettings, Settings

from . import codecs, errors, settings, types, utils

__mlpack_compat__ = True
__all__ = [
    "MLModel",
    "ModelSettings",
    "Settings",
    "__version__",
    "codecs",
    "errors",
    "log",
    "register",
    "settings",
    "types",
    "utils",
]
