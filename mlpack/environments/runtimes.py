"""The built-in runtimes: the one list every other place derives from.

Each runtime is its own top-level package under ``runtimes/<folder>/`` (installed with
mlpack); ``pyproject.toml`` lists the same packages (a unit test checks it), workers in a
model's own environment get them on their path, and MLServer's implementation names map
onto them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuiltinRuntime:
    """One built-in runtime package and the model class it provides."""

    folder: str  # runtimes/<folder>/
    package: str  # the importable top-level package
    model_class: str
    mlserver_implementation: str  # MLServer's name for the same runtime

    @property
    def implementation(self) -> str:
        """The ``implementation`` import string naming this runtime's model class."""
        return f"{self.package}.{self.model_class}"


BUILTIN_RUNTIMES: tuple[BuiltinRuntime, ...] = (
    BuiltinRuntime("sklearn", "mlpack_sklearn", "SKLearnModel", "mlserver_sklearn.SKLearnModel"),
    BuiltinRuntime("xgboost", "mlpack_xgboost", "XGBoostModel", "mlserver_xgboost.XGBoostModel"),
    BuiltinRuntime(
        "lightgbm", "mlpack_lightgbm", "LightGBMModel", "mlserver_lightgbm.LightGBMModel"
    ),
    BuiltinRuntime("onnx", "mlpack_onnx", "OnnxModel", "mlserver_onnx.OnnxModel"),
    BuiltinRuntime("mlflow", "mlpack_mlflow", "MLflowModel", "mlserver_mlflow.MLflowRuntime"),
    BuiltinRuntime(
        "huggingface",
        "mlpack_huggingface",
        "HuggingFaceModel",
        "mlserver_huggingface.HuggingFaceRuntime",
    ),
)


def runtime_packages() -> tuple[str, ...]:
    """The top-level package names of the built-in runtimes."""
    return tuple(runtime.package for runtime in BUILTIN_RUNTIMES)


def implementation_aliases() -> dict[str, str]:
    """MLServer implementation names → mlpack's built-in runtime classes."""
    return {r.mlserver_implementation: r.implementation for r in BUILTIN_RUNTIMES}
