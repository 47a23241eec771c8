"""LightGBM runtime for mlpack: ``implementation: mlpack_lightgbm.LightGBMModel``."""

from .runtime import LightGBMModel

__all__ = ["LightGBMModel"]
