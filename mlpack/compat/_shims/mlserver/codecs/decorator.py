"""``mlserver.codecs.decorator``."""

from mlpack.codecs.decode_args import decode_args

__mlpack_compat__ = True
__all__ = ["decode_args"]
