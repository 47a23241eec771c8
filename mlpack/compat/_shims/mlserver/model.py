"""``mlserver.model``."""

from mlpack.model import MLModel

__mlpack_compat__ = True
__all__ = ["MLModel"]
