"""``mlserver.codecs.datetime``."""

from mlpack.codecs.datetime import DatetimeCodec

__mlpack_compat__ = True
__all__ = ["DatetimeCodec"]
