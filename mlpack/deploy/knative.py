"""``--target knative``: a Knative Service scaled on request concurrency (KPA)."""

from __future__ import annotations

from typing import Any

from .kubernetes import Manifest, container_security, model_env, resources
from .values import DeployValues


def knative_service(values: DeployValues) -> Manifest:
    scaling = values.autoscaling
    # Knative routes one port to the container and sets PORT itself; serve REST there.
    env = [e for e in values.server_env() if e["name"] != "MLPACK_HTTP_PORT"]
    container: dict[str, Any] = {
        "name": "model-server",
        "image": values.image,
        "env": [
            {"name": "MLPACK_HTTP_PORT", "value": str(values.http_port)},
            *env,
            *model_env(values),
        ],
        "ports": [{"name": "http1", "containerPort": values.http_port}],
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready"}, "periodSeconds": 2},
        "livenessProbe": {"httpGet": {"path": "/v2/health/live"}, "periodSeconds": 10},
        "resources": resources(values),
        "securityContext": container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    metadata: dict[str, Any] = {"name": values.name, "labels": values.common_labels()}
    if values.namespace:
        metadata["namespace"] = values.namespace
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "template": {
                "metadata": {
                    "labels": values.common_labels(),
                    "annotations": {
                        "autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev",
                        "autoscaling.knative.dev/metric": "concurrency",
                        "autoscaling.knative.dev/target": str(values.target_concurrency),
                        "autoscaling.knative.dev/min-scale": str(scaling.min_replicas),
                        "autoscaling.knative.dev/max-scale": str(scaling.max_replicas),
                    },
                },
                "spec": {
                    "containerConcurrency": values.container_concurrency,
                    "timeoutSeconds": 300,
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
                },
            }
        },
    }


def render(values: DeployValues) -> list[Manifest]:
    return [knative_service(values)]
