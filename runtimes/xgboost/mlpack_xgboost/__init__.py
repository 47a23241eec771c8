"""XGBoost runtime for mlpack: ``implementation: mlpack_xgboost.XGBoostModel``."""

from .runtime import XGBoostModel

__all__ = ["XGBoostModel"]
