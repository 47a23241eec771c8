"""``mlserver.settings``."""

from mlpack.settings import CORSSettings, ModelParameters, ModelSettings, Settings

__mlpack_compat__ = True
__all__ = ["CORSSettings", "ModelParameters", "ModelSettings", "Settings"]
