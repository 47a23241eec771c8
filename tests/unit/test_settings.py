from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlpack.errors import InvalidSettings
from mlpack.settings import ModelSettings, Settings


def write(path: Path, values: object) -> Path:
    path.write_text(json.dumps(values))
    return path


def test_precedence_cli_over_env_over_file_over_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_file = write(
        tmp_path / "settings.json", {"http_port": 1000, "grpc_port": 1001, "metrics_port": 1002}
    )
    monkeypatch.setenv("MLPACK_GRPC_PORT", "2001")
    monkeypatch.setenv("MLPACK_METRICS_PORT", "2002")
    settings = Settings.resolve(settings_file, {"metrics_port": 3002})
    assert settings.http_port == 1000  # file
    assert settings.grpc_port == 2001  # env beats file
    assert settings.metrics_port == 3002  # CLI beats env
    assert settings.parallel_workers == 0  # default


def test_dotenv_is_read_below_real_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("MLPACK_HTTP_PORT=4000\nMLPACK_GRPC_PORT=4001\n")
    monkeypatch.setenv("MLPACK_GRPC_PORT", "5001")
    settings = Settings.resolve(None)
    assert (settings.http_port, settings.grpc_port) == (4000, 5001)


def test_nested_env_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPACK_CORS_SETTINGS__ALLOW_ORIGINS", '["https://a.example"]')
    settings = Settings.resolve(None)
    assert settings.cors_settings is not None
    assert settings.cors_settings.allow_origins == ["https://a.example"]


def test_invalid_settings_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidSettings, match="http_port"):
        Settings.resolve(write(tmp_path / "settings.json", {"http_port": "eighty"}))
    (tmp_path / "broken.json").write_text("{nope")
    with pytest.raises(InvalidSettings, match="not valid JSON"):
        Settings.resolve(tmp_path / "broken.json")


def test_model_file_wins_over_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "my-model"
    folder.mkdir()
    write(folder / "model-settings.json", {"implementation": "models.M", "max_batch_size": 4})
    monkeypatch.setenv("MLPACK_MODEL_MAX_BATCH_SIZE", "64")
    monkeypatch.setenv("MLPACK_MODEL_MAX_BATCH_TIME", "0.01")
    settings = ModelSettings.resolve(folder / "model-settings.json")
    assert settings.max_batch_size == 4  # the file's value stands
    assert settings.max_batch_time == 0.01  # the environment fills what the file leaves unset
    assert settings.name == "my-model"  # defaults to the folder name
    assert settings.folder == str(folder.resolve())


def test_model_settings_keep_mlserver_field_names(tmp_path: Path) -> None:
    values = {
        "name": "m",
        "implementation": "x.Y",
        "platform": "sklearn",
        "versions": ["1"],
        "inputs": [{"name": "a", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "b", "datatype": "INT64", "shape": [-1]}],
        "parameters": {
            "uri": "./m.joblib",
            "version": "1",
            "content_type": "np",
            "environment_tarball": "env.tar.gz",
            "extra": {"k": 1},
            "custom": True,
        },
        "max_batch_size": 8,
        "max_batch_time": 0.1,
        "warm_workers": True,
    }
    settings = ModelSettings.resolve(write(tmp_path / "model-settings.json", values))
    assert settings.parameters.version == "1" and settings.parameters.extra == {"k": 1}
    assert settings.inputs[0].shape == [-1, 4]
    assert settings.parameters.model_extra == {"custom": True}
