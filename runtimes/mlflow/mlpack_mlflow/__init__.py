"""MLflow runtime for mlpack: ``implementation: mlpack_mlflow.MLflowModel``.

``MLflowRuntime`` is the same class under MLServer's name (``mlserver_mlflow.MLflowRuntime``).
"""

from .runtime import MLflowModel

MLflowRuntime = MLflowModel

__all__ = ["MLflowModel", "MLflowRuntime"]
