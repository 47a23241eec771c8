"""What a rendered deployment needs, with precedence flags > values file > project > defaults."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import InvalidSettings

# RFC 1123 label: what Kubernetes accepts for Deployment, Service and most object names.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

# Built-in runtimes → the KServe model format they serve (name, version).
RUNTIME_FORMATS: dict[str, tuple[str, str]] = {
    "mlpack_sklearn": ("sklearn", "1"),
    "mlpack_xgboost": ("xgboost", "2"),
    "mlpack_lightgbm": ("lightgbm", "4"),
    "mlpack_onnx": ("onnx", "1"),
    "mlserver_sklearn": ("sklearn", "1"),
    "mlserver_xgboost": ("xgboost", "2"),
    "mlserver_lightgbm": ("lightgbm", "4"),
    "mlserver_onnx": ("onnx", "1"),
}
# The format a custom model (its code baked into the image) is declared with.
CUSTOM_FORMAT = ("mlpack", "1")


class Resources(BaseModel):
    """Container requests and limits (Kubernetes quantities)."""

    model_config = ConfigDict(extra="forbid")

    cpu_request: str = "500m"
    memory_request: str = "512Mi"
    cpu_limit: str | None = None
    memory_limit: str | None = "1Gi"


class Autoscaling(BaseModel):
    """HorizontalPodAutoscaler (or KEDA) bounds and the signal to scale on."""

    model_config = ConfigDict(extra="forbid")

    min_replicas: int = Field(default=2, ge=1)
    max_replicas: int = Field(default=10, ge=1)
    # cpu: average CPU utilisation; in_flight: per-pod average of model_requests_in_flight
    # (served to the HPA by a custom-metrics adapter such as prometheus-adapter).
    metric: Literal["cpu", "in_flight"] = "cpu"
    target_cpu_utilization: int = Field(default=70, ge=1, le=100)
    target_in_flight: float = Field(default=4.0, gt=0)
    # KEDA: a ScaledObject with a Prometheus trigger instead of an HPA.
    keda: bool = False
    prometheus_url: str = "http://prometheus-server.monitoring.svc:9090"


class DeployValues(BaseModel):
    """Everything the renderers use. Field names are the keys of a values file."""

    model_config = ConfigDict(extra="forbid")

    name: str
    image: str
    namespace: str | None = None
    model_name: str
    # Import path of the model class (e.g. mlpack_sklearn.SKLearnModel); None: the image's
    # own model-settings.json decides.
    implementation: str | None = None
    # The implementation in the image's own model-settings.json (read from the project);
    # decides the KServe model format when ``implementation`` is not given.
    baked_implementation: str | None = None
    # KServe: where the model artefact is (s3://, gs://, pvc://...); KServe mounts it at
    # /mnt/models and the server builds the model from the environment.
    storage_uri: str | None = None
    replicas: int = Field(default=2, ge=1)
    http_port: int = Field(default=8080, ge=1, le=65535)
    grpc_port: int = Field(default=9000, ge=1, le=65535)
    metrics_port: int = Field(default=8082, ge=1, le=65535)
    drain_delay: float = Field(default=5.0, ge=0)
    graceful_timeout: float = Field(default=30.0, ge=0)
    parallel_workers: int | None = Field(default=None, ge=0)
    resources: Resources = Field(default_factory=Resources)
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    # Knative: requests one pod takes at once (containerConcurrency), and the autoscaler's target.
    container_concurrency: int = Field(default=0, ge=0)
    target_concurrency: int = Field(default=8, ge=1)
    env: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    version: str = "latest"

    @field_validator("name")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if len(value) > 63 or not _DNS_LABEL.match(value):
            raise ValueError(
                f"'{value}' is not a valid Kubernetes name (lower-case letters, digits and '-', "
                "starting and ending with a letter or digit, at most 63 characters)"
            )
        return value

    @property
    def model_format(self) -> tuple[str, str]:
        """The KServe model format: the runtime's, or mlpack's custom format."""
        package = (self.implementation or self.baked_implementation or "").split(".", 1)[0]
        return RUNTIME_FORMATS.get(package, CUSTOM_FORMAT)

    @property
    def termination_grace_seconds(self) -> int:
        """Drain delay + graceful timeout + a margin for unloading models."""
        return math.ceil(self.drain_delay + self.graceful_timeout + 5)

    def common_labels(self, component: str = "model-server") -> dict[str, str]:
        labels = {
            "app.kubernetes.io/name": self.name,
            "app.kubernetes.io/instance": self.name,
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": "mlpack",
            "app.kubernetes.io/managed-by": "mlpack",
            "app.kubernetes.io/version": _label_value(self.version),
        }
        return {**labels, **self.labels}

    def selector_labels(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": self.name, "app.kubernetes.io/instance": self.name}

    def server_env(self) -> list[dict[str, str]]:
        """The variables the image reads (the same settings ``mlpack start`` takes)."""
        values = {
            "MLPACK_HTTP_PORT": str(self.http_port),
            "MLPACK_GRPC_PORT": str(self.grpc_port),
            "MLPACK_METRICS_PORT": str(self.metrics_port),
            "MLPACK_DRAIN_DELAY": f"{self.drain_delay:g}",
            "MLPACK_GRACEFUL_TIMEOUT": f"{self.graceful_timeout:g}",
        }
        if self.parallel_workers is not None:
            values["MLPACK_PARALLEL_WORKERS"] = str(self.parallel_workers)
        values.update(self.env)
        return [{"name": key, "value": value} for key, value in values.items()]


def _label_value(value: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", value)[:63].strip("-_.")
    return cleaned or "unknown"


def load_values(
    values_file: Path | None, project: dict[str, Any], flags: dict[str, Any]
) -> DeployValues:
    """Merge ``project`` (from the model folder) < values file < ``flags``; validate once."""
    from_file: dict[str, Any] = {}
    if values_file is not None:
        import yaml

        try:
            loaded = yaml.safe_load(Path(values_file).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InvalidSettings(f"{values_file}: no such file") from None
        except yaml.YAMLError as error:
            raise InvalidSettings(f"{values_file}: not valid YAML ({error})") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise InvalidSettings(f"{values_file}: expected a mapping, got {type(loaded).__name__}")
        from_file = loaded
    merged = _merge(_merge(project, from_file), {k: v for k, v in flags.items() if v is not None})
    if "name" not in merged and merged.get("model_name"):
        merged["name"] = _dns_name(str(merged["model_name"]))
    try:
        return DeployValues.model_validate(merged)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or 'value'}: {item['msg']}"
            for item in error.errors()
        )
        raise InvalidSettings(f"deploy values: {problems}") from None


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _dns_name(value: str) -> str:
    """A model name made into a Kubernetes name (``My_Model`` → ``my-model``)."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", value.lower()).strip("-")[:63].strip("-")
    return cleaned or "model"
