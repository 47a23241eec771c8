"""``mlserver.logging``: the ``logger`` models log through."""

import logging

logger = logging.getLogger("mlpack.model")

__mlpack_compat__ = True
__all__ = ["logger"]
