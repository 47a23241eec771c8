"""Server and model settings (MLServer-compatible field names).

Data only: loading files and applying precedence happens in ``resolve`` classmethods,
called once at the edge (the CLI). Server precedence, highest first: CLI flags,
environment (``MLPACK_*``, then ``.env``), ``settings.json``, defaults. Model
precedence: the model's ``model-settings.json``, then environment (``MLPACK_MODEL_*``),
then defaults — a model's own file is never overridden by the environment.

MLServer's variables are aliases: ``MLSERVER_*`` for ``MLPACK_*`` and ``MLSERVER_MODEL_*``
for ``MLPACK_MODEL_*`` (the ``MLPACK_`` name wins when both are set). MLServer settings
mlpack does not implement are kept out of the settings and reported as ``notices``, one
warning per field, which the CLI logs once logging is configured.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import InvalidSettings
from .types import MetadataTensor

SETTINGS_FILENAME = "settings.json"
MODEL_SETTINGS_FILENAME = "model-settings.json"

ENV_PREFIX, MODEL_ENV_PREFIX = "MLPACK_", "MLPACK_MODEL_"
ALIAS_PREFIX, MODEL_ALIAS_PREFIX = "MLSERVER_", "MLSERVER_MODEL_"
# Drain delay when none is configured and the process runs in a Kubernetes pod (the
# variable every pod gets): endpoints controllers and proxies need a few seconds to
# stop routing to a terminating pod.
KUBERNETES_DRAIN_DELAY = 5.0

# MLServer settings mlpack does not implement → what mlpack does instead (one warning each).
_SCANS = "mlpack scans model_repository_root for model-settings.json files"
_NO_KAFKA = "there is no Kafka transport; use REST or gRPC, or `mlpack infer` for batch jobs"
_NO_CACHE = "responses are not cached; every request runs the model"
_POOL_GID = "name the pool with worker_pool (inference_pool_gid is read as worker_pool)"
MLSERVER_ONLY_SETTINGS: dict[str, str] = {
    "model_repository_implementation": _SCANS,
    "model_repository_implementation_args": _SCANS,
    "extensions": "server extensions are not loaded; run extra logic in the model's predict",
    "kafka_enabled": _NO_KAFKA,
    "kafka_servers": _NO_KAFKA,
    "kafka_topic_input": _NO_KAFKA,
    "kafka_topic_output": _NO_KAFKA,
    "cache_enabled": _NO_CACHE,
    "cache_size": _NO_CACHE,
    "gzip_enabled": "responses are not compressed; let the ingress or proxy compress them",
    "models_dir": "the model folder is `mlpack start FOLDER`'s argument (or MLPACK_MODEL_URI)",
    "env_tarball": "give each model its environment (parameters.environment_tarball)",
}
MLSERVER_ONLY_MODEL_SETTINGS: dict[str, str] = {
    "autogenerate_inference_pool_gid": _POOL_GID,
    "cache_enabled": _NO_CACHE,
}
# Other servers' names for model fields mlpack has: MLServer's pool group id, Triton's count.
MODEL_FIELD_ALIASES: dict[str, str] = {
    "instance_count": "parallel_workers",
    "inference_pool_gid": "worker_pool",
}


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


class AuthSettings(BaseModel):
    """Static API keys in two scopes; authentication is on as soon as any key is set.

    Data-plane keys allow inference, metadata, docs and stats; control-plane keys allow
    those and the repository API (index, load, unload). Health routes stay open.
    """

    model_config = ConfigDict(extra="forbid")

    data_plane_tokens: list[SecretStr] = Field(default_factory=list)
    control_plane_tokens: list[SecretStr] = Field(default_factory=list)
    # Files with one key per line (blank lines and '#' comments ignored), e.g. mounted secrets.
    data_plane_tokens_file: str | None = None
    control_plane_tokens_file: str | None = None
    # Where the key travels: "authorization" takes "Bearer KEY"; any other header the bare key.
    header: str = "authorization"
    # The metrics port asks for a key (either scope) too.
    metrics_requires_token: bool = False


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
    # Loopback only by default; images made by ``mlpack build`` set 0.0.0.0 explicitly.
    host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)  # 0: any free port
    grpc_port: int = Field(default=8081, ge=0, le=65535)  # 0: any free port
    root_path: str = ""
    server_name: str = "mlpack"
    server_version: str = Field(default_factory=lambda: _package_version())
    model_repository_root: str = "."
    load_models_at_startup: bool = True
    parallel_workers: int = Field(default=0, ge=0)
    parallel_workers_timeout: float = Field(default=5.0, gt=0)
    # Front-end processes serving REST and gRPC on the same ports (SO_REUSEPORT) under one
    # supervisor; "auto": one per CPU core (server/frontends.py).
    http_workers: Annotated[int, Field(ge=1, le=1024)] | Literal["auto"] = 1
    # With several front-ends: seconds between the supervisor's collects of their metrics
    # (besides each scrape); a front-end that dies loses what it counted since the last.
    frontend_collect_interval: float = Field(default=2.0, ge=0.1, le=300.0)
    # ... and how long each collect (and a scrape) waits for each front-end's answer (one
    # that does not answer keeps its last figures in the sum).
    frontend_collect_timeout: float = Field(default=5.0, ge=0.1, le=300.0)
    # /stats and the dashboard's data across front-ends: how long the supervisor waits for
    # each front-end (one that does not answer is left out, named in ``missing``), and how
    # long the asking front-end waits for the supervisor's whole answer (then it answers
    # with its own figures alone); the second must exceed the first.
    frontend_gather_timeout: float = Field(default=2.0, ge=0.1, le=60.0)
    frontend_gather_total_timeout: float = Field(default=5.0, ge=0.2, le=120.0)

    @model_validator(mode="after")
    def _gather_fits(self) -> Settings:
        if self.frontend_gather_total_timeout <= self.frontend_gather_timeout:
            raise ValueError(
                "frontend_gather_total_timeout "
                f"({self.frontend_gather_total_timeout:g}s) must be longer than "
                f"frontend_gather_timeout ({self.frontend_gather_timeout:g}s): the asking "
                "front-end waits for the supervisor, which waits for each front-end"
            )
        return self

    environments_dir: str | None = None
    # `mlpack start` builds a model's environment from its requirements / conda file
    # (cached under environments_dir); False refuses such models with a message.
    build_environments: bool = True
    # Bounds on what one environment tarball may unpack to (see mlpack.environments.extract).
    environment_max_bytes: int = Field(default=8 << 30, gt=0)
    environment_max_files: int = Field(default=100_000, gt=0)
    environment_max_path_length: int = Field(default=1024, gt=0)
    environment_max_ratio: float = Field(default=200.0, gt=0)
    metrics_port: int = Field(default=8082, ge=0, le=65535)  # 0: any free port
    metrics_endpoint: str | None = "/metrics"
    metrics_rest_server_prefix: str = "rest_server"
    metrics_dir: str | None = None
    grpc_max_message_length: int | None = None
    cors_settings: CORSSettings | None = None
    # Live dashboard at /v2/dashboard (per-model throughput, latency, batches, queues).
    dashboard_enabled: bool = True
    # Models whose runtime's own REST routes are served (e.g. MLflow's /invocations);
    # a route's path names no model, so each path serves one model named here.
    model_routes: list[str] = Field(default_factory=list)
    use_structured_logging: bool = False
    logging_settings: Any | None = None
    access_log: bool = False
    # Who may call what (server/auth.py): API keys in two scopes; off when no key is set.
    auth: AuthSettings = Field(default_factory=AuthSettings)
    # The repository API: "on", "read_only" (index only) or "off" (every route 403).
    control_plane: Literal["on", "read_only", "off"] = "on"
    # Loading a model by name re-scans model_repository_root for folders added after start.
    repository_rescan: bool = False
    # TLS for REST and gRPC (server/tls.py): PEM chain and key; a client CA turns on mutual TLS.
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_client_ca_file: str | None = None
    # Seconds between checks for changed certificate files (SIGHUP reloads at once).
    tls_reload_interval: float = Field(default=10.0, gt=0)
    # What a client learns when a model raises: "message" (its own words, never a traceback)
    # or "generic" (a fixed sentence and an error id; the message goes to the log).
    model_error_detail: Literal["message", "generic"] = "message"
    # Host headers the REST and metrics ports accept (Starlette patterns; None: any).
    trusted_hosts: list[str] | None = None
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
    # Seconds between SIGTERM and closing the listeners: readiness answers 503 at once while
    # requests are still served, so load balancers stop routing here first. None: 0, or
    # KUBERNETES_DRAIN_DELAY inside a Kubernetes pod.
    drain_delay: float | None = Field(default=None, ge=0)
    # Model code may `import mlserver` (mlpack.compat) when MLServer itself is not installed.
    mlserver_compat: bool = True

    # (level, message) lines about aliases and unsupported settings, logged by the CLI.
    _notices: list[tuple[int, str]] = PrivateAttr(default_factory=list)

    @property
    def notices(self) -> list[tuple[int, str]]:
        return self._notices

    # Seconds a request may take, queueing included, unless its model sets its own
    # (None: no limit); past it the client gets 504 / DEADLINE_EXCEEDED.
    inference_timeout: float | None = Field(default=None, gt=0)
    # Seconds a stream's next response may wait for its client to take it (a client that
    # stays connected but stops reading); past it the stream is abandoned. 0: no bound.
    stream_stall_timeout: float = Field(default=60.0, ge=0)
    # -- limits under load (see README "Limits and timeouts") --------------------------------
    # Requests waiting for a worker process (parallel_workers > 0); beyond: 503 + Retry-After.
    max_queue_size: int = Field(default=4096, ge=1)
    # Calls one worker process holds at once (its pipeline): one computes, the others wait
    # in the worker, so it starts the next (request or batch) the moment one ends instead of
    # idling while the server answers and sends more. 1: no pipeline.
    worker_pipeline_depth: int = Field(default=2, ge=1, le=64)
    # Worker health: a ping every interval; no answer within the timeout -> killed, replaced.
    worker_ping_interval: float = Field(default=5.0, ge=0)
    worker_ping_timeout: float = Field(default=10.0, gt=0)
    # Replace a worker after this many predictions (+ up to 10% jitter); 0: never.
    max_requests_per_worker: int = Field(default=0, ge=0)
    # Longest wait between attempts to start a replacement worker (never gives up).
    worker_max_restart_backoff: float = Field(default=30.0, gt=0)
    # REST: open connections (None: from the open-file limit) and requests in flight at once.
    max_connections: int | None = Field(default=None, ge=1)
    max_concurrent_requests: int = Field(default=4096, ge=1)
    # REST: largest request body (64 MiB), request head (64 KiB) and header count.
    max_request_size: int = Field(default=64 * 1024 * 1024, ge=1)
    max_header_size: int = Field(default=64 * 1024, ge=1024)
    max_header_count: int = Field(default=100, ge=1)
    # REST timeouts (seconds): reading a request's head, its body, and idle keep-alive.
    timeout_request_head: float = Field(default=10.0, gt=0)
    timeout_request_body: float = Field(default=60.0, gt=0)
    timeout_keep_alive: float = Field(default=5.0, gt=0)

    @classmethod
    def resolve(
        cls,
        settings_file: Path | None = None,
        overrides: dict[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Build settings: CLI ``overrides`` > ``MLPACK_*`` > ``MLSERVER_*`` > ``settings_file``
        > defaults."""
        environ = os.environ if environ is None else environ
        file_values = _read_json(settings_file) if settings_file else {}
        notices = _unsupported(
            file_values, cls.model_fields, MLSERVER_ONLY_SETTINGS, str(settings_file)
        )
        for key in [k for k in file_values if k not in cls.model_fields]:
            del file_values[key]
        try:
            from_env = cls()
            env_values = {name: getattr(from_env, name) for name in from_env.model_fields_set}
            alias_values = _alias_values(
                cls, environ, ALIAS_PREFIX, ENV_PREFIX, env_values, notices
            )
            merged = {**file_values, **alias_values, **env_values, **(overrides or {})}
            settings = cls.model_validate(merged)
        except ValidationError as error:
            raise InvalidSettings(_describe(error, settings_file)) from None
        if settings.drain_delay is None:
            settings.drain_delay = (
                KUBERNETES_DRAIN_DELAY if "KUBERNETES_SERVICE_HOST" in environ else 0.0
            )
        settings._notices = notices
        return settings

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
    # An MLflow model folder's requirements.txt / conda.yaml record training and are not
    # used unless this asks for them: then they describe the model's own environment.
    mlflow_environment: bool = False
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
    # Seconds a request to this model may take (None: the server's inference_timeout). For a
    # stream: the longest wait for its first response and between two responses.
    inference_timeout: float | None = Field(default=None, gt=0)
    # Responses a stream may hold between the model and a slow client; when it is full the
    # model's generator waits (back-pressure) instead of the server buffering more.
    max_stream_buffer: int = Field(default=8, ge=1)
    # Where an in-process model's plain-function predict runs: "never" on its own model
    # thread (a hop each way), "always" on the serving loop itself (no hop; the loop waits
    # for predict), "auto" on the serving loop while its measured compute averages under
    # inline_predict_max_ms and nothing else is queued for the model. async def predict and
    # streams always use the model thread; worker processes are not affected.
    inline_predict: Literal["auto", "always", "never"] = "auto"
    inline_predict_max_ms: float = Field(default=1.0, gt=0, le=1000)
    # Seconds a response may wait for a client that stopped reading before the stream is
    # abandoned (None: the server's stream_stall_timeout; 0: no bound).
    stream_stall_timeout: float | None = Field(default=None, ge=0)
    # Report batch size and queue wait in response parameters and x-mlpack-* headers.
    serving_info: bool = False
    warm_workers: bool = False
    # Worker processes for this model (alias instance_count): 0 runs it in the server
    # process, N in a pool of N processes of its own; None: the server's parallel_workers
    # (the shared default pool). See README "Batching and workers".
    parallel_workers: int | None = Field(default=None, ge=0)
    # A pool shared by name (alias MLServer's inference_pool_gid): the models naming it share
    # its processes; it has as many as the largest parallel_workers among them.
    worker_pool: str | None = Field(default=None, min_length=1, max_length=64)
    # Load the model once in a pool's zygote and fork the workers from it (weights shared
    # copy-on-write); False: a library that is not fork-safe, each worker loads it itself.
    preload: bool = True
    # Opt-in request/response payload logging (server/payload_log.py).
    payload_log: PayloadLogSettings | None = None
    # Folder that holds model-settings.json; relative URIs resolve against it.
    folder: str | None = Field(default=None, exclude=True)

    @property
    def version(self) -> str | None:
        return self.parameters.version

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, values: Any) -> Any:
        """Other servers' names (``instance_count``, ``inference_pool_gid``) for ours."""
        if not isinstance(values, dict):
            return values
        values = dict(values)
        for alias, field in MODEL_FIELD_ALIASES.items():
            if alias in values:
                aliased = values.pop(alias)
                values.setdefault(field, aliased)
        return values

    _notices: list[tuple[int, str]] = PrivateAttr(default_factory=list)

    @property
    def notices(self) -> list[tuple[int, str]]:
        """(level, message) lines about aliases and unsupported MLServer settings."""
        return self._notices

    @classmethod
    def resolve(cls, settings_file: Path) -> ModelSettings:
        """Read one ``model-settings.json``: file > environment > defaults (name: folder name)."""
        values = _read_json(settings_file)
        folder = settings_file.parent.resolve()
        notices = _model_notices(values, str(settings_file))
        try:
            settings = cls(**values)
        except ValidationError as error:
            raise InvalidSettings(_describe(error, settings_file)) from None
        if not settings.name:
            settings.name = folder.name
        settings.folder = str(folder)
        settings._notices = notices
        return settings

    @classmethod
    def from_environment(
        cls, folder: Path, environ: Mapping[str, str] | None = None
    ) -> ModelSettings | None:
        """The single model described by ``MLPACK_MODEL_*`` / ``MLSERVER_MODEL_*`` alone.

        KServe's way: ``implementation`` and ``name`` from the environment, ``uri`` pointing
        at the mounted model (``/mnt/models``, a folder or a file), no ``model-settings.json``.
        Top-level ``*_URI``, ``*_VERSION``, ``*_FORMAT``, ``*_CONTENT_TYPE``,
        ``*_ENVIRONMENT_TARBALL``, ``*_ENVIRONMENT_PATH`` and ``*_EXTRA`` (JSON) fill
        ``parameters``, as in MLServer. ``folder`` is where ``implementation`` is imported
        from (e.g. a ``models.py``); None when no implementation is set.
        """
        environ = os.environ if environ is None else environ
        notices: list[tuple[int, str]] = []
        values = _prefixed(environ, MODEL_ENV_PREFIX)
        for key, value in _prefixed(environ, MODEL_ALIAS_PREFIX).items():
            if key in values:
                continue
            values[key] = value
            notices.append(
                (
                    logging.INFO,
                    f"{MODEL_ALIAS_PREFIX}{key.upper()} used as {MODEL_ENV_PREFIX}{key.upper()}",
                )
            )
        if not values.get("implementation"):
            return None
        parameters: dict[str, Any] = {}
        for key in list(values):
            if key in ModelParameters.model_fields:
                raw = values.pop(key)
                parameters[key] = (
                    _json_value(raw, f"{MODEL_ENV_PREFIX}{key.upper()}") if key == "extra" else raw
                )
        fields = {
            key for key in ModelSettings.model_fields if key not in ("folder", "parameters")
        } | set(MODEL_FIELD_ALIASES)
        notices += _unsupported(
            values, fields | {"parameters"}, MLSERVER_ONLY_MODEL_SETTINGS, "environment"
        )
        kept: dict[str, Any] = {}
        for key, raw in values.items():
            if key in fields:
                complex_field = key in ("versions", "inputs", "outputs")
                kept[key] = (
                    _json_value(raw, f"{MODEL_ENV_PREFIX}{key.upper()}") if complex_field else raw
                )
        if "parameters" in values:
            parameters = {
                **_json_value(values["parameters"], f"{MODEL_ENV_PREFIX}PARAMETERS"),
                **parameters,
            }
        try:
            settings = cls.model_validate({**kept, "parameters": parameters})
        except ValidationError as error:
            raise InvalidSettings(
                _describe(error, None).replace("settings:", "model from environment:", 1)
            ) from None
        folder = Path(folder).resolve()
        if not settings.name:
            uri = settings.parameters.uri
            settings.name = (
                Path(uri).stem if uri and Path(uri).stem not in ("", "models") else "model"
            )
        settings.folder = str(folder)
        settings._notices = notices
        return settings


def _prefixed(environ: Mapping[str, str], prefix: str) -> dict[str, str]:
    """``PREFIX_SOME_FIELD=v`` → ``{"some_field": "v"}`` (nested ``__`` names are skipped)."""
    found: dict[str, str] = {}
    for name, value in environ.items():
        if name.upper().startswith(prefix) and "__" not in name:
            key = name[len(prefix) :].lower()
            if prefix == ALIAS_PREFIX and key.startswith("model_"):
                continue  # MLSERVER_MODEL_* belong to the model
            if prefix == ENV_PREFIX and key.startswith(("model_", "env_model")):
                continue
            found[key] = value
    return found


def _alias_values(
    cls: type[Settings],
    environ: Mapping[str, str],
    alias_prefix: str,
    prefix: str,
    already: dict[str, Any],
    notices: list[tuple[int, str]],
) -> dict[str, Any]:
    """Server values from ``MLSERVER_*`` names that have no ``MLPACK_*`` value."""
    names = _prefixed(environ, alias_prefix)
    notices += _unsupported(names, cls.model_fields, MLSERVER_ONLY_SETTINGS, "environment")
    wanted = {key for key in names if key in cls.model_fields and key not in already}
    if not wanted:
        return {}
    # Let pydantic-settings parse them exactly as it parses MLPACK_* (JSON for complex fields).
    aliased = cls(_env_prefix=alias_prefix, _env_file=None)  # type: ignore[call-arg]
    values = {key: getattr(aliased, key) for key in wanted if key in aliased.model_fields_set}
    for key in sorted(values):
        notices.append((logging.INFO, f"{alias_prefix}{key.upper()} used as {prefix}{key.upper()}"))
    return values


def _unsupported(
    values: Mapping[str, Any], known: Any, mlserver_only: dict[str, str], source: str
) -> list[tuple[int, str]]:
    """One warning per MLServer-only or unknown field: what it is and what mlpack does instead."""
    notices: list[tuple[int, str]] = []
    for key in sorted(values):
        if key in known:
            continue
        if key in mlserver_only:
            notices.append(
                (
                    logging.WARNING,
                    f"{source}: MLServer setting '{key}' is not supported by mlpack "
                    f"and is ignored: {mlserver_only[key]}",
                )
            )
        else:
            notices.append((logging.WARNING, f"{source}: unknown setting '{key}' is ignored"))
    return notices


def _model_notices(values: Mapping[str, Any], source: str) -> list[tuple[int, str]]:
    known = set(ModelSettings.model_fields) | set(MODEL_FIELD_ALIASES)
    notices = _unsupported(values, known, MLSERVER_ONLY_MODEL_SETTINGS, source)
    parameters = values.get("parameters")
    if isinstance(parameters, dict):
        for key in sorted(parameters):
            if key in MLSERVER_ONLY_MODEL_SETTINGS:
                notices.append(
                    (
                        logging.WARNING,
                        f"{source}: MLServer setting 'parameters.{key}' is not supported "
                        f"by mlpack and is ignored: {MLSERVER_ONLY_MODEL_SETTINGS[key]}",
                    )
                )
    return notices


def _json_value(raw: Any, name: str) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as error:
        raise InvalidSettings(f"{name}: not valid JSON ({error})") from None


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
