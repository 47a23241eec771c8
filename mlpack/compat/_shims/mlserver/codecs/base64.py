"""``mlserver.codecs.base64``."""

from mlpack.codecs.base64 import Base64Codec

__mlpack_compat__ = True
__all__ = ["Base64Codec"]
