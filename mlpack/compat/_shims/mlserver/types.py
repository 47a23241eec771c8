"""``mlserver.types``: the Open Inference Protocol types."""

from mlpack.types import *  # noqa: F403
from mlpack.types import __all__ as _names

TensorData = list  # MLServer's TensorData accepts a list (or nested lists) of values

__mlpack_compat__ = True
__all__ = [*_names, "TensorData"]
