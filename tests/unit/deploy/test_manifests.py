"""``mlpack deploy``'s manifests, validated offline against the schemas a cluster would use.

Core kinds: the Kubernetes OpenAPI schemas bundled by ``kubernetes-validate`` (strict: no
unknown fields), pinned to KUBERNETES_VERSION. KServe and KEDA custom resources: JSON schemas
derived from their CRDs (tests/assets/k8s-schemas, source versions in its README).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from mlpack.cli import create_app
from mlpack.deploy import load_values, render_manifests, to_yaml
from mlpack.deploy.kubernetes import IN_FLIGHT_METRIC
from mlpack.errors import InvalidSettings
from mlpack.server.autoscaling import IN_FLIGHT

KUBERNETES_VERSION = "1.33.0"
SCHEMAS = Path(__file__).resolve().parents[2] / "assets" / "k8s-schemas"
CRD_SCHEMAS = {
    ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"): "clusterservingruntime-v1alpha1.json",
    ("serving.kserve.io/v1beta1", "InferenceService"): "inferenceservice-v1beta1.json",
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject-v1alpha1.json",
}
CORE_KINDS = {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"}


def values(**overrides: Any) -> Any:
    base = {"image": "registry.invalid/iris:1.0", "model_name": "iris"}
    return load_values(None, {}, {**base, **overrides})


def validate(manifest: dict[str, Any]) -> None:
    """Raise when ``manifest`` does not validate against its kind's schema."""
    key = (manifest.get("apiVersion"), manifest.get("kind"))
    if key in CRD_SCHEMAS:
        schema = json.loads((SCHEMAS / CRD_SCHEMAS[key]).read_text())  # type: ignore[index]
        jsonschema.validate(manifest, schema)
    elif key == ("serving.knative.dev/v1", "Service"):
        validate_knative(manifest)
    elif manifest.get("kind") in CORE_KINDS:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    else:
        raise AssertionError(f"no schema for {key}")


def validate_knative(manifest: dict[str, Any]) -> None:
    """Knative's CRD has no detailed schema: check its shape, and its pod template as a core Pod."""
    template = manifest["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/metric"] == "concurrency"
    spec = copy.deepcopy(template["spec"])
    assert len(spec["containers"]) == 1 and len(spec["containers"][0]["ports"]) == 1
    for knative_only in ("containerConcurrency", "timeoutSeconds"):
        spec.pop(knative_only)
    port = spec["containers"][0]["ports"][0]["containerPort"]
    for probe in ("readinessProbe", "livenessProbe"):  # Knative fills in the port itself
        spec["containers"][0][probe]["httpGet"]["port"] = port
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": manifest["metadata"], "spec": spec}
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(
    ("target", "overrides", "kinds"),
    [
        (
            "kubernetes",
            {},
            ["Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"],
        ),
        (
            "kubernetes",
            {"autoscaling": {"metric": "in_flight"}, "namespace": "models"},
            ["Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"],
        ),
        (
            "kubernetes",
            {"autoscaling": {"keda": True}},
            ["Deployment", "Service", "PodDisruptionBudget", "ScaledObject"],
        ),
        ("kserve", {}, ["ClusterServingRuntime", "InferenceService"]),
        (
            "kserve",
            {"storage_uri": "s3://bucket/iris", "implementation": "mlpack_sklearn.SKLearnModel"},
            ["ClusterServingRuntime", "InferenceService"],
        ),
        ("knative", {"implementation": "mlpack_xgboost.XGBoostModel"}, ["Service"]),
    ],
)
def test_every_rendered_manifest_validates(
    target: str, overrides: dict[str, Any], kinds: list[str]
) -> None:
    manifests = render_manifests(values(**overrides), target)
    assert [m["kind"] for m in manifests] == kinds
    # Through YAML and back, as kubectl would read it.
    for manifest in yaml.safe_load_all(to_yaml(manifests)):
        validate(manifest)
        labels = manifest["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "mlpack"
        assert labels["app.kubernetes.io/name"] == "iris"


@pytest.mark.parametrize(
    ("target", "break_it"),
    [
        ("kubernetes", lambda ms: ms[0]["spec"].__setitem__("replicas", "two")),
        (
            "kubernetes",
            lambda ms: ms[0]["spec"]["template"]["spec"]["containers"][0].__setitem__(
                "imagePullPolcy", "Always"
            ),
        ),
        ("kubernetes", lambda ms: ms[1]["spec"]["ports"][0].pop("port")),
        ("kubernetes", lambda ms: ms[3]["spec"].pop("scaleTargetRef")),
        (
            "kserve",
            lambda ms: ms[0]["spec"]["supportedModelFormats"][0].__setitem__("autoSelect", "yes"),
        ),
        (
            "kserve",
            lambda ms: ms[1]["spec"]["predictor"]["model"].__setitem__(
                "modelFormat", {"version": "1"}
            ),
        ),
        (
            "kserve",
            lambda ms: ms[1]["spec"]["predictor"]["model"]["env"][0].__setitem__("value", 5),
        ),
        (
            "kserve",
            lambda ms: ms[0]["spec"]["containers"][0]["ports"][0].__setitem__(
                "containerPort", "8080"
            ),
        ),
    ],
)
def test_a_broken_manifest_fails_validation(target: str, break_it: Any) -> None:
    manifests = render_manifests(values(), target)
    break_it(manifests)
    problems = []
    for manifest in manifests:
        try:
            validate(manifest)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as error:
            problems.append(error)
    assert len(problems) == 1, problems  # the broken one, and only it


def test_keda_scaled_object_missing_its_target_fails() -> None:
    manifests = render_manifests(values(autoscaling={"keda": True}), "kubernetes")
    del manifests[3]["spec"]["scaleTargetRef"]
    with pytest.raises(jsonschema.ValidationError, match="scaleTargetRef"):
        validate(manifests[3])


def test_deployment_follows_the_container_contract() -> None:
    rendered = values(drain_delay=7, graceful_timeout=20, parallel_workers=2)
    deployment, service, pdb, _hpa = render_manifests(rendered, "kubernetes")
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert (
        deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    )
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] and security["runAsNonRoot"]
    assert (
        security["capabilities"] == {"drop": ["ALL"]} and not security["allowPrivilegeEscalation"]
    )
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["MLPACK_DRAIN_DELAY"] == "7" and env["MLPACK_GRACEFUL_TIMEOUT"] == "20"
    assert env["MLPACK_PARALLEL_WORKERS"] == "2" and env["MLPACK_GRPC_PORT"] == "9000"
    assert pod["spec"]["terminationGracePeriodSeconds"] > 7 + 20
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    named = {port["name"] for port in container["ports"]}
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= named
    grpc = next(port for port in service["spec"]["ports"] if port["name"] == "grpc")
    assert grpc["appProtocol"] == "kubernetes.io/h2c"


def test_autoscalers_use_the_gauge_the_server_exports() -> None:
    assert IN_FLIGHT_METRIC == IN_FLIGHT
    hpa = render_manifests(
        values(autoscaling={"metric": "in_flight", "target_in_flight": 3}), "kubernetes"
    )[3]
    metric = hpa["spec"]["metrics"][0]["pods"]
    assert metric["metric"]["name"] == IN_FLIGHT and metric["target"]["averageValue"] == "3"
    keda = render_manifests(values(namespace="ml", autoscaling={"keda": True}), "kubernetes")[3]
    query = keda["spec"]["triggers"][0]["metadata"]["query"]
    assert query == f'sum({IN_FLIGHT}{{model_name="iris",namespace="ml"}})'


def test_kserve_runtime_declares_builtin_formats_and_both_protocols() -> None:
    runtime, isvc = render_manifests(
        values(storage_uri="gs://b/m", implementation="mlserver_xgboost.XGBoostModel"), "kserve"
    )
    formats = {(f["name"], f["version"]) for f in runtime["spec"]["supportedModelFormats"]}
    assert {
        ("sklearn", "1"),
        ("xgboost", "2"),
        ("lightgbm", "4"),
        ("onnx", "1"),
        ("mlpack", "1"),
    } <= formats
    assert runtime["spec"]["protocolVersions"] == ["v2", "grpc-v2"]
    model = isvc["spec"]["predictor"]["model"]
    assert (
        model["modelFormat"] == {"name": "xgboost", "version": "2"}
        and model["runtime"] == runtime["metadata"]["name"]
    )
    env = {item["name"]: item["value"] for item in model["env"]}
    assert env["MLPACK_MODEL_URI"] == "/mnt/models" and env["MLPACK_ENV_MODEL"] == "1"


def test_values_file_below_flags_and_clear_errors(tmp_path: Path) -> None:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(
        "image: from-file:1\nreplicas: 3\nautoscaling:\n  max_replicas: 4\n  metric: in_flight\n"
    )
    merged = load_values(
        values_file,
        {"model_name": "My_Model"},
        {"image": "from-flag:2", "autoscaling": {"min_replicas": 1}},
    )
    assert (merged.image, merged.replicas, merged.name) == ("from-flag:2", 3, "my-model")
    assert (
        merged.autoscaling.min_replicas,
        merged.autoscaling.max_replicas,
        merged.autoscaling.metric,
    ) == (1, 4, "in_flight")
    with pytest.raises(InvalidSettings, match="not a valid Kubernetes name"):
        load_values(None, {}, {"image": "x", "model_name": "m", "name": "Bad_Name"})
    with pytest.raises(InvalidSettings, match="image"):
        load_values(None, {}, {"model_name": "m"})
    values_file.write_text("replicas: [")
    with pytest.raises(InvalidSettings, match="not valid YAML"):
        load_values(values_file, {}, {})
    values_file.write_text("replicaz: 2\nimage: x\nmodel_name: m\n")
    with pytest.raises(InvalidSettings, match="replicaz"):
        load_values(values_file, {}, {})


def test_cli_renders_from_the_project_folder(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "model-settings.json").write_text(
        json.dumps({"name": "iris", "implementation": "mlpack_sklearn.SKLearnModel"})
    )
    (project / "settings.json").write_text(json.dumps({"graceful_timeout": 12, "drain_delay": 3}))
    runner = CliRunner()
    result = runner.invoke(
        create_app(), ["deploy", str(project), "--image", "img:1", "--target", "kserve"]
    )
    assert result.exit_code == 0, result.output
    runtime, isvc = list(yaml.safe_load_all(result.output))
    assert isvc["metadata"]["name"] == "iris"
    assert isvc["spec"]["predictor"]["model"]["modelFormat"]["name"] == "sklearn"
    env = {item["name"]: item["value"] for item in runtime["spec"]["containers"][0]["env"]}
    assert env["MLPACK_DRAIN_DELAY"] == "3" and env["MLPACK_GRACEFUL_TIMEOUT"] == "12"
    out = tmp_path / "out"
    result = runner.invoke(create_app(), ["deploy", str(project), "-i", "img:1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "01-deployment-iris.yaml",
        "02-service-iris.yaml",
        "03-poddisruptionbudget-iris.yaml",
        "04-horizontalpodautoscaler-iris.yaml",
    ]
    for path in out.iterdir():
        validate(yaml.safe_load(path.read_text()))
    result = runner.invoke(
        create_app(), ["deploy", str(project), "-i", "img:1", "--target", "swarm"]
    )
    assert result.exit_code == 2 and "kubernetes, kserve, knative" in result.output
    result = runner.invoke(create_app(), ["deploy", str(project)])
    assert result.exit_code == 2 and "image" in result.output
