"""``mlserver.codecs.pandas``."""

from mlpack.codecs.pandas import PandasCodec

__mlpack_compat__ = True
__all__ = ["PandasCodec"]
