"""Server and model settings (MLServer-compatible field names).

Data only: loading files and applying precedence happens in ``resolve`` classmethods,
called once at the edge (the CLI). Server precedence, highest first: CLI flags,
environment (``MLPACK_*``, then ``.env``), ``settings.json``, defaults. Model
precedence: the model's ``model-settings.json``, then environment (``MLPACK_MODEL_*``),
then defaults — a model's own file is never overridden by the environment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import InvalidSettings
from .types import MetadataTensor

SETTINGS_FILENAME = "settings.json"
MODEL_SETTINGS_FILENAME = "model-settings.json"


class CORSSettings(BaseModel):
    """Cross-origin resource sharing, as Starlette's CORSMiddleware takes it."""

    model_config = ConfigDict(extra="forbid")

    allow_origins: list[str] = Field(default_factory=list)
    allow_origin_regex: str | None = None
    allow_credentials: bool = False
    allow_methods: list[str] = Field(default_factory=lambda: ["GET"])
    allow_headers: list[str] = Field(default_factory=list)
    expose_headers: list[str] = Field(default_factory=list)
    max_age: int = 600


class PayloadLogSettings(BaseModel):
    """Request/response payload logging for one model (KServe's logger format).

    Exactly one destination: ``path`` (JSON lines, one CloudEvent per line) or ``url``
    (each event POSTed as a binary-mode CloudEvent). Events wait in a bounded queue and
    are written by a background thread; when the queue is full they are dropped (and
    counted), so logging never blocks or fails a request.
    """

    model_config = ConfigDict(extra="forbid")

    path: str | None = None
    url: str | None = None
    # What to log: "all" (request and response), "request" or "response".
    mode: Literal["all", "request", "response"] = "all"
    # Share of requests logged (0..1).
    sample_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    # Events waiting to be written; beyond it new events are dropped.
    max_queue: int = Field(default=1000, ge=1)
    # Seconds one POST to ``url`` may take.
    timeout: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _one_destination(self) -> PayloadLogSettings:
        if (self.path is None) == (self.url is None):
            raise ValueError("payload_log needs exactly one of 'path' or 'url'")
        return self


class Settings(BaseSettings):
    """Server-wide settings (``settings.json`` / ``MLPACK_*``)."""

    model_config = SettingsConfigDict(
        env_prefix="MLPACK_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
        protected_namespaces=(),
    )

    debug: bool = False
    host: str = "0.0.0.0"
    http_port: int = Field(default=8080, ge=0, le=65535)  # 0: any free port
    grpc_port: int = Field(default=8081, ge=0, le=65535)  # 0: any free port
    root_path: str = ""
    server_name: str = "mlpack"
    server_version: str = Field(default_factory=lambda: _package_version())
    model_repository_root: str = "."
    load_models_at_startup: bool = True
    parallel_workers: int = Field(default=0, ge=0)
    parallel_workers_timeout: float = Field(default=5.0, gt=0)
    environments_dir: str | None = None
    metrics_port: int = Field(default=8082, ge=0, le=65535)  # 0: any free port
    metrics_endpoint: str | None = "/metrics"
    metrics_rest_server_prefix: str = "rest_server"
    metrics_dir: str | None = None
    grpc_max_message_length: int | None = None
    cors_settings: CORSSettings | None = None
    use_structured_logging: bool = False
    logging_settings: Any | None = None
    access_log: bool = False
    # DEBUG for every logger, third-party ones too (``debug`` only covers mlpack and uvicorn).
    debug_all: bool = False
    # Further loggers to set to DEBUG (e.g. ["grpc", "mymodel"]).
    debug_loggers: list[str] = Field(default_factory=list)
    # Exit non-zero when a model fails to load or a model-settings.json is invalid.
    exit_on_error: bool = False
    # Ready only when every model is ready (True), or when at least one is (False).
    strict_readiness: bool = True
    # OpenTelemetry (``mlpack[tracing]``): the OTLP collector (MLServer's setting; or the
    # OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT variables), its protocol ("grpc" or
    # "http/protobuf"; default OTEL_EXPORTER_OTLP_PROTOCOL or grpc) and the share of
    # traces sampled when the caller did not decide (OTEL_TRACES_SAMPLER_ARG).
    tracing_server: str | None = None
    tracing_protocol: str | None = None
    tracing_sampling_ratio: float | None = Field(default=None, ge=0.0, le=1.0)
    # How long a graceful shutdown waits for in-flight requests.
    graceful_timeout: float = Field(default=30.0, ge=0)

    @classmethod
    def resolve(
        cls, settings_file: Path | None = None, overrides: dict[str, Any] | None = None
    ) -> Settings:
        """Build settings: CLI ``overrides`` > environment > ``settings_file`` > defaults."""
        file_values = _read_json(settings_file) if settings_file else {}
        try:
            from_env = cls()
            env_values = {name: getattr(from_env, name) for name in from_env.model_fields_set}
            merged = {**file_values, **env_values, **(overrides or {})}
            return cls.model_validate(merged)
        except ValidationError as error:
            raise InvalidSettings(_describe(error, settings_file)) from None

    @classmethod
    def from_file(cls, settings_file: Path | None) -> Settings:
        """``settings_file`` over defaults, without the environment (what an image bakes in)."""
        file_values = _read_json(settings_file) if settings_file else {}
        try:
            return cls.model_validate(file_values)
        except ValidationError as error:
            raise InvalidSettings(_describe(error, settings_file)) from None


class ModelParameters(BaseModel):
    """``parameters`` of a model: where its artefact is, its version, its defaults."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    uri: str | None = None
    version: str | None = None
    environment_tarball: str | None = None
    environment_path: str | None = None
    content_type: str | None = None
    format: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class ModelSettings(BaseSettings):
    """One model (``model-settings.json`` / ``MLPACK_MODEL_*``)."""

    model_config = SettingsConfigDict(
        env_prefix="MLPACK_MODEL_",
        env_nested_delimiter="__",
        extra="ignore",
        protected_namespaces=(),
    )

    name: str = ""
    implementation: str = ""
    platform: str = ""
    versions: list[str] = Field(default_factory=list)
    inputs: list[MetadataTensor] = Field(default_factory=list)
    outputs: list[MetadataTensor] = Field(default_factory=list)
    parameters: ModelParameters = Field(default_factory=ModelParameters)
    max_batch_size: int = Field(default=0, ge=0)
    max_batch_time: float = Field(default=0.0, ge=0)
    max_queue_size: int = Field(default=1024, ge=1)
    # Report batch size and queue wait in response parameters and x-mlpack-* headers.
    serving_info: bool = False
    warm_workers: bool = False
    # Opt-in request/response payload logging (server/payload_log.py).
    payload_log: PayloadLogSettings | None = None
    # Folder that holds model-settings.json; relative URIs resolve against it.
    folder: str | None = Field(default=None, exclude=True)

    @property
    def version(self) -> str | None:
        return self.parameters.version

    @classmethod
    def resolve(cls, settings_file: Path) -> ModelSettings:
        """Read one ``model-settings.json``: file > environment > defaults (name: folder name)."""
        values = _read_json(settings_file)
        folder = settings_file.parent.resolve()
        try:
            settings = cls(**values)
        except ValidationError as error:
            raise InvalidSettings(_describe(error, settings_file)) from None
        if not settings.name:
            settings.name = folder.name
        settings.folder = str(folder)
        return settings


def read_settings_file(path: Path) -> dict[str, Any]:
    """The JSON object a settings file holds, as written (for tools that rewrite the file)."""
    return _read_json(path)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidSettings(f"{path}: no such file") from None
    except json.JSONDecodeError as error:
        raise InvalidSettings(f"{path}: not valid JSON ({error})") from None
    if not isinstance(values, dict):
        raise InvalidSettings(f"{path}: expected a JSON object, got {type(values).__name__}")
    return values


def _describe(error: ValidationError, source: Path | None) -> str:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in item['loc']) or 'value'}: {item['msg']}"
        for item in error.errors()
    )
    return f"{source or 'settings'}: {problems}"


def _package_version() -> str:
    from ._version import __version__

    return __version__
