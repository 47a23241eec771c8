"""``mlserver.codecs.string``."""

from mlpack.codecs.string import StringCodec, StringRequestCodec

__mlpack_compat__ = True
__all__ = ["StringCodec", "StringRequestCodec"]
