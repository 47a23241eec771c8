"""``--target kserve``: a ClusterServingRuntime for mlpack and an InferenceService.

The runtime declares the model formats of mlpack's built-in runtimes (plus ``mlpack`` for
custom models baked into the image) with protocols ``v2`` and ``grpc-v2``. KServe merges
the InferenceService's ``predictor.model`` into the runtime's container, mounts
``storageUri`` at ``/mnt/models``, and the server builds the model from the environment.
"""

from __future__ import annotations

from typing import Any

from .kubernetes import Manifest, container_security, probes, resources
from .values import CUSTOM_FORMAT, RUNTIME_FORMATS, DeployValues

MOUNT_PATH = "/mnt/models"


def runtime_name(values: DeployValues) -> str:
    return f"{values.name}-runtime"


def cluster_serving_runtime(values: DeployValues) -> Manifest:
    formats = [*sorted(set(RUNTIME_FORMATS.values())), CUSTOM_FORMAT]
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ClusterServingRuntime",
        "metadata": {
            "name": runtime_name(values),
            "labels": values.common_labels("serving-runtime"),
        },
        "spec": {
            "annotations": {
                "prometheus.kserve.io/port": str(values.metrics_port),
                "prometheus.kserve.io/path": "/metrics",
            },
            "supportedModelFormats": [
                {"name": name, "version": version, "autoSelect": name != "mlpack", "priority": 1}
                for name, version in formats
            ],
            "protocolVersions": ["v2", "grpc-v2"],
            "multiModel": False,
            "containers": [
                {
                    "name": "kserve-container",
                    "image": values.image,
                    "env": values.server_env(),
                    "ports": [
                        {"containerPort": values.http_port, "name": "http1", "protocol": "TCP"}
                    ],
                    **probes(values, named_port=False),
                    "resources": resources(values),
                    "securityContext": container_security(),
                }
            ],
        },
    }


def inference_service(values: DeployValues) -> Manifest:
    name, version = values.model_format
    model: dict[str, Any] = {
        "modelFormat": {"name": name, "version": version},
        "runtime": runtime_name(values),
        "protocolVersion": "v2",
    }
    env = [{"name": "MLPACK_MODEL_NAME", "value": values.model_name}]
    if values.storage_uri:
        model["storageUri"] = values.storage_uri
        env += [
            {"name": "MLPACK_ENV_MODEL", "value": "1"},
            {"name": "MLPACK_MODEL_URI", "value": MOUNT_PATH},
        ]
    if values.implementation:
        env.append({"name": "MLPACK_MODEL_IMPLEMENTATION", "value": values.implementation})
    model["env"] = env
    metadata: dict[str, Any] = {
        "name": values.name,
        "labels": values.common_labels("inference-service"),
    }
    if values.namespace:
        metadata["namespace"] = values.namespace
    scaling = values.autoscaling
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": {
            "predictor": {
                "minReplicas": scaling.min_replicas,
                "maxReplicas": scaling.max_replicas,
                "terminationGracePeriodSeconds": values.termination_grace_seconds,
                "model": model,
            }
        },
    }


def render(values: DeployValues) -> list[Manifest]:
    return [cluster_serving_runtime(values), inference_service(values)]
