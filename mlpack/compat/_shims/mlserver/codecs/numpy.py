"""``mlserver.codecs.numpy``."""

from mlpack.codecs.numpy import NumpyCodec, NumpyRequestCodec

__mlpack_compat__ = True
__all__ = ["NumpyCodec", "NumpyRequestCodec"]
