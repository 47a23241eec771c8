"""ONNX Runtime for mlpack: ``implementation: mlpack_onnx.OnnxModel``."""

from .runtime import OnnxModel

__all__ = ["OnnxModel"]
