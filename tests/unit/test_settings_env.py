"""Configuration by environment alone (KServe's way) and MLServer's variable names."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from mlpack.errors import InvalidSettings
from mlpack.model_uri import resolve_model_uri
from mlpack.settings import KUBERNETES_DRAIN_DELAY, ModelSettings, Settings

KSERVE_ENV = {
    "MLSERVER_MODEL_IMPLEMENTATION": "mlserver_sklearn.SKLearnModel",
    "MLSERVER_MODEL_NAME": "iris",
    "MLSERVER_MODEL_URI": "/mnt/models",
    "MLSERVER_HTTP_PORT": "8080",
    "MLSERVER_GRPC_PORT": "9000",
}


def messages(notices: list[tuple[int, str]], level: int) -> list[str]:
    return [message for lvl, message in notices if lvl == level]


def test_mlserver_server_variables_are_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in KSERVE_ENV.items():
        monkeypatch.setenv(name, value)
    settings = Settings.resolve(None)
    assert (settings.http_port, settings.grpc_port) == (8080, 9000)
    infos = messages(settings.notices, logging.INFO)
    assert "MLSERVER_GRPC_PORT used as MLPACK_GRPC_PORT" in infos
    assert "MLSERVER_HTTP_PORT used as MLPACK_HTTP_PORT" in infos
    # Model variables belong to the model, not to the server: no warning about them.
    assert messages(settings.notices, logging.WARNING) == []


def test_mlpack_wins_over_mlserver_and_mlserver_over_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps({"grpc_port": 1001, "metrics_port": 1002}))
    monkeypatch.setenv("MLSERVER_GRPC_PORT", "9000")
    monkeypatch.setenv("MLPACK_GRPC_PORT", "7000")
    monkeypatch.setenv("MLSERVER_METRICS_PORT", "9002")
    monkeypatch.setenv("MLSERVER_CORS_SETTINGS", '{"allow_origins": ["https://a.example"]}')
    settings = Settings.resolve(settings_file)
    assert settings.grpc_port == 7000
    assert settings.metrics_port == 9002
    assert settings.cors_settings is not None and settings.cors_settings.allow_origins == [
        "https://a.example"
    ]
    infos = messages(settings.notices, logging.INFO)
    assert not any("GRPC_PORT" in line for line in infos)  # the alias lost: nothing to say


def test_bad_alias_value_is_a_settings_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSERVER_HTTP_PORT", "eighty")
    with pytest.raises(InvalidSettings, match="http_port"):
        Settings.resolve(None)


def test_mlserver_only_settings_warn_once_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(
        json.dumps({"gzip_enabled": True, "tracing_server": "otel:4317", "no_such": 1})
    )
    monkeypatch.setenv("MLSERVER_KAFKA_ENABLED", "true")
    monkeypatch.setenv("MLSERVER_CACHE_ENABLED", "true")
    settings = Settings.resolve(settings_file)
    warnings = messages(settings.notices, logging.WARNING)
    assert len(warnings) == 4, warnings  # tracing_server is supported (OpenTelemetry)
    assert settings.tracing_server == "otel:4317"
    assert not any("tracing_server" in w for w in warnings)
    by_field = {
        field: [w for w in warnings if f"'{field}'" in w]
        for field in ("gzip_enabled", "no_such", "kafka_enabled", "cache_enabled")
    }
    assert all(len(found) == 1 for found in by_field.values()), by_field
    assert "compress" in by_field["gzip_enabled"][0]  # says what mlpack does instead
    assert "Kafka" in by_field["kafka_enabled"][0]
    assert "unknown" in by_field["no_such"][0]


def test_model_from_kserve_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in KSERVE_ENV.items():
        monkeypatch.setenv(name, value)
    model = ModelSettings.from_environment(tmp_path)
    assert model is not None
    assert (model.name, model.implementation, model.parameters.uri) == (
        "iris",
        "mlserver_sklearn.SKLearnModel",
        "/mnt/models",
    )
    assert model.folder == str(tmp_path.resolve())
    assert "MLSERVER_MODEL_URI used as MLPACK_MODEL_URI" in messages(model.notices, logging.INFO)


def test_model_environment_mlpack_wins_and_parses_fields(tmp_path: Path) -> None:
    environ = {
        "MLSERVER_MODEL_IMPLEMENTATION": "a.B",
        "MLPACK_MODEL_IMPLEMENTATION": "models.Mine",
        "MLPACK_MODEL_MAX_BATCH_SIZE": "8",
        "MLSERVER_MODEL_VERSION": "v3",
        "MLPACK_MODEL_EXTRA": '{"k": 1}',
        "MLPACK_MODEL_INPUTS": '[{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]',
        "MLSERVER_MODEL_INFERENCE_POOL_GID": "pool-a",
    }
    model = ModelSettings.from_environment(tmp_path, environ)
    assert model is not None
    assert model.implementation == "models.Mine"
    assert model.max_batch_size == 8
    assert model.parameters.version == "v3"
    assert model.parameters.extra == {"k": 1}
    assert model.inputs[0].name == "x"
    assert model.name == "model"
    assert messages(model.notices, logging.WARNING) == []
    assert model.worker_pool == "pool-a"  # MLServer's pool group id names the pool


def test_no_implementation_means_no_environment_model(tmp_path: Path) -> None:
    assert ModelSettings.from_environment(tmp_path, {"MLSERVER_MODEL_NAME": "x"}) is None


def test_bad_environment_model_is_a_settings_error(tmp_path: Path) -> None:
    environ = {"MLPACK_MODEL_IMPLEMENTATION": "a.B", "MLPACK_MODEL_MAX_BATCH_SIZE": "-1"}
    with pytest.raises(InvalidSettings, match="max_batch_size"):
        ModelSettings.from_environment(tmp_path, environ)
    with pytest.raises(InvalidSettings, match="MLPACK_MODEL_INPUTS"):
        ModelSettings.from_environment(
            tmp_path, {"MLPACK_MODEL_IMPLEMENTATION": "a.B", "MLPACK_MODEL_INPUTS": "[x"}
        )


def test_model_settings_file_warns_about_mlserver_only_fields(tmp_path: Path) -> None:
    path = tmp_path / "model-settings.json"
    path.write_text(
        json.dumps(
            {
                "implementation": "a.B",
                "inference_pool_gid": "g",
                "parameters": {"uri": "m.joblib", "autogenerate_inference_pool_gid": True},
            }
        )
    )
    model = ModelSettings.resolve(path)
    warnings = messages(model.notices, logging.WARNING)
    assert len(warnings) == 1
    assert model.worker_pool == "g"  # inference_pool_gid is read as worker_pool
    assert any("'parameters.autogenerate_inference_pool_gid'" in w for w in warnings)


def test_drain_delay_defaults_to_kubernetes_value_inside_a_pod() -> None:
    assert Settings.resolve(None, environ={}).drain_delay == 0.0
    pod = Settings.resolve(None, environ={"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert pod.drain_delay == KUBERNETES_DRAIN_DELAY
    assert (
        Settings.resolve(
            None, {"drain_delay": 1.5}, environ={"KUBERNETES_SERVICE_HOST": "x"}
        ).drain_delay
        == 1.5
    )


def test_folder_uri_finds_the_well_known_file(tmp_path: Path) -> None:
    mounted = tmp_path / "mnt"
    mounted.mkdir()
    (mounted / "model.joblib").write_bytes(b"x")
    (mounted / "README").write_text("x")
    assert resolve_model_uri(str(mounted), None, ["model.joblib"]) == mounted / "model.joblib"
    single = tmp_path / "single"
    single.mkdir()
    (single / "estimator.pkl").write_bytes(b"x")
    assert resolve_model_uri(str(single), None, ["model.joblib"]) == single / "estimator.pkl"
    # Without a URI the model folder is searched for the defaults only (never "the one file").
    assert resolve_model_uri(None, str(single), ["model.joblib"]) == single / "model.joblib"
    assert resolve_model_uri("rel.bin", str(tmp_path), []) == tmp_path / "rel.bin"
