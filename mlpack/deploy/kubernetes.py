"""``--target kubernetes``: Deployment, Service, PodDisruptionBudget and an autoscaler."""

from __future__ import annotations

from typing import Any

from .values import DeployValues

Manifest = dict[str, Any]

# The custom metric the in-flight HPA and the KEDA query use (server/autoscaling.py).
IN_FLIGHT_METRIC = "model_requests_in_flight"


def _metadata(values: DeployValues, name: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name or values.name, "labels": values.common_labels()}
    if values.namespace:
        metadata["namespace"] = values.namespace
    return metadata


def probes(values: DeployValues, named_port: bool = True) -> dict[str, Any]:
    """Readiness, liveness and startup probes on the V2 health routes."""
    port: Any = "http" if named_port else values.http_port

    def http_get(path: str) -> dict[str, Any]:
        return {"path": path, "port": port}

    return {
        "readinessProbe": {
            "httpGet": http_get("/v2/health/ready"),
            "periodSeconds": 2,
            "timeoutSeconds": 2,
            "failureThreshold": 1,
        },
        "livenessProbe": {
            "httpGet": http_get("/v2/health/live"),
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        "startupProbe": {
            "httpGet": http_get("/v2/health/live"),
            "periodSeconds": 2,
            "timeoutSeconds": 2,
            "failureThreshold": 150,
        },
    }


def container_security() -> dict[str, Any]:
    """Non-root, read-only root filesystem, no privilege escalation, no capabilities."""
    return {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resources(values: DeployValues) -> dict[str, Any]:
    r = values.resources
    limits = {k: v for k, v in {"cpu": r.cpu_limit, "memory": r.memory_limit}.items() if v}
    out: dict[str, Any] = {"requests": {"cpu": r.cpu_request, "memory": r.memory_request}}
    if limits:
        out["limits"] = limits
    return out


def model_env(values: DeployValues) -> list[dict[str, str]]:
    """Variables describing the model when it is not the image's own model-settings.json."""
    env = []
    if values.implementation:
        env.append({"name": "MLPACK_MODEL_IMPLEMENTATION", "value": values.implementation})
        env.append({"name": "MLPACK_MODEL_NAME", "value": values.model_name})
    return env


def deployment(values: DeployValues) -> Manifest:
    container = {
        "name": "model-server",
        "image": values.image,
        "imagePullPolicy": "IfNotPresent",
        "env": [*values.server_env(), *model_env(values)],
        "ports": [
            {"name": "http", "containerPort": values.http_port, "protocol": "TCP"},
            {"name": "grpc", "containerPort": values.grpc_port, "protocol": "TCP"},
            {"name": "metrics", "containerPort": values.metrics_port, "protocol": "TCP"},
        ],
        **probes(values),
        "resources": resources(values),
        "securityContext": container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(values),
        "spec": {
            "replicas": values.replicas,
            "selector": {"matchLabels": values.selector_labels()},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {
                    "labels": values.common_labels(),
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(values.metrics_port),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "terminationGracePeriodSeconds": values.termination_grace_seconds,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "automountServiceAccountToken": False,
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
                },
            },
        },
    }


def service(values: DeployValues) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(values),
        "spec": {
            "type": "ClusterIP",
            "selector": values.selector_labels(),
            "ports": [
                {
                    "name": "http",
                    "port": values.http_port,
                    "targetPort": "http",
                    "protocol": "TCP",
                    "appProtocol": "http",
                },
                {
                    "name": "grpc",
                    "port": values.grpc_port,
                    "targetPort": "grpc",
                    "protocol": "TCP",
                    "appProtocol": "kubernetes.io/h2c",
                },
                {
                    "name": "metrics",
                    "port": values.metrics_port,
                    "targetPort": "metrics",
                    "protocol": "TCP",
                    "appProtocol": "http",
                },
            ],
        },
    }


def pod_disruption_budget(values: DeployValues) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(values),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": values.selector_labels()}},
    }


def horizontal_pod_autoscaler(values: DeployValues) -> Manifest:
    scaling = values.autoscaling
    if scaling.metric == "cpu":
        metric: dict[str, Any] = {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {
                    "type": "Utilization",
                    "averageUtilization": scaling.target_cpu_utilization,
                },
            },
        }
    else:
        metric = {
            "type": "Pods",
            "pods": {
                "metric": {
                    "name": IN_FLIGHT_METRIC,
                    "selector": {"matchLabels": {"model_name": values.model_name}},
                },
                "target": {"type": "AverageValue", "averageValue": f"{scaling.target_in_flight:g}"},
            },
        }
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(values),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": values.name},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [metric],
        },
    }


def in_flight_query(values: DeployValues) -> str:
    """PromQL: requests in flight for the model summed over the deployment's pods."""
    selector = f'model_name="{values.model_name}"'
    if values.namespace:
        selector += f',namespace="{values.namespace}"'
    return f"sum({IN_FLIGHT_METRIC}{{{selector}}})"


def scaled_object(values: DeployValues) -> Manifest:
    scaling = values.autoscaling
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": _metadata(values),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": values.name},
            "minReplicaCount": scaling.min_replicas,
            "maxReplicaCount": scaling.max_replicas,
            "triggers": [
                {
                    "type": "prometheus",
                    "metadata": {
                        "serverAddress": scaling.prometheus_url,
                        "query": in_flight_query(values),
                        "threshold": f"{scaling.target_in_flight:g}",
                    },
                }
            ],
        },
    }


def render(values: DeployValues) -> list[Manifest]:
    autoscaler = (
        scaled_object(values) if values.autoscaling.keda else horizontal_pod_autoscaler(values)
    )
    return [deployment(values), service(values), pod_disruption_budget(values), autoscaler]
