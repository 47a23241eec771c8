"""``mlserver.codecs``: mlpack's codecs under MLServer's names."""

from typing import Any

from mlpack.codecs import *  # noqa: F403
from mlpack.codecs import __all__ as _names
from mlpack.errors import InvalidRequest as CodecError

__mlpack_compat__ = True
__all__ = [*_names, "CodecError"]


def __getattr__(name: str) -> Any:
    if name == "PandasCodec":
        from mlpack.codecs.pandas import PandasCodec

        return PandasCodec
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
