"""Hugging Face runtime for mlpack: ``implementation: mlpack_huggingface.HuggingFaceModel``.

``HuggingFaceRuntime`` is the same class under MLServer's name
(``mlserver_huggingface.HuggingFaceRuntime``).
"""

from .runtime import HuggingFaceModel

HuggingFaceRuntime = HuggingFaceModel

__all__ = ["HuggingFaceModel", "HuggingFaceRuntime"]
