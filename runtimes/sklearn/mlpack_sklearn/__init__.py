"""scikit-learn runtime for mlpack: ``implementation: mlpack_sklearn.SKLearnModel``."""

from .runtime import SKLearnModel

__all__ = ["SKLearnModel"]
