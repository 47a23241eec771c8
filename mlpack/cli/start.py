"""``mlpack start FOLDER``: serve every model found below a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .errors import STARTUP_FAILURE, USAGE_ERROR, exit_on_error


def register(app: typer.Typer) -> None:
    app.command(name="start")(start)


def start(
    folder: Annotated[
        Path,
        typer.Argument(
            help="A model folder, or a folder of model folders (with an optional settings.json)."
        ),
    ] = Path("."),
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on (default 127.0.0.1; 0.0.0.0: all).")
    ] = None,
    http_port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="REST port (default 8080).")
    ] = None,
    grpc_port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="gRPC port (default 8081).")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Prometheus metrics port (default 8082)."),
    ] = None,
    parallel_workers: Annotated[
        int | None, typer.Option(help="Inference worker processes (0: in the server process).")
    ] = None,
    frontends: Annotated[
        str | None,
        typer.Option(
            "--frontends",
            metavar="N|auto",
            help="Front-end processes serving REST and gRPC on the same ports (default 1; "
            "auto: one per CPU core; setting http_workers, env MLPACK_HTTP_WORKERS).",
        ),
    ] = None,
    debug: Annotated[
        bool | None, typer.Option("--debug/--no-debug", help="DEBUG logs from mlpack and uvicorn.")
    ] = None,
    debug_all: Annotated[
        bool | None,
        typer.Option("--debug-all", help="DEBUG logs from every library (grpc, asyncio, ...)."),
    ] = None,
    debug_logger: Annotated[
        list[str] | None,
        typer.Option(
            "--debug-logger", metavar="NAME", help="A logger to set to DEBUG (repeatable)."
        ),
    ] = None,
    fatal_errors: Annotated[
        bool | None,
        typer.Option(
            "--exit-on-error",
            help="Exit non-zero if any model fails to load or any settings file is invalid.",
        ),
    ] = None,
    settings_path: Annotated[
        Path | None,
        typer.Option(
            "--settings",
            help="Server settings file (default: settings.json in FOLDER, when present).",
        ),
    ] = None,
    no_build_envs: Annotated[
        bool,
        typer.Option(
            "--no-build-envs",
            help="Do not build environments from requirements.txt / environment.yml"
            " (such models fail to load, saying how to pack them).",
        ),
    ] = False,
    plan: Annotated[
        bool,
        typer.Option(
            "--plan",
            help="Print the processes, the models each one serves and an estimate of their "
            "memory (each model loaded once to measure it), then exit without serving.",
        ),
    ] = False,
    model_from_env: Annotated[
        bool,
        typer.Option(
            "--model-from-env",
            envvar="MLPACK_ENV_MODEL",
            help="Serve the single model described by MLPACK_MODEL_* (or MLSERVER_MODEL_*) "
            "even when FOLDER holds model-settings.json files (done anyway when FOLDER holds none, "
            "or when the environment gives both the implementation and the URI).",
        ),
    ] = False,
) -> None:
    """Serve FOLDER over the Open Inference Protocol (REST and gRPC)."""
    from ..engine.repository import SettingsProblem, discover_models
    from ..server.app import MLPackServer, run_server
    from ..settings import SETTINGS_FILENAME, ModelSettings, Settings

    if not folder.is_dir():
        typer.secho(f"Error: {folder} is not a folder", err=True, fg=typer.colors.RED)
        raise typer.Exit(USAGE_ERROR)
    overrides: dict[str, Any] = {
        key: value
        for key, value in {
            "host": host,
            "http_port": http_port,
            "grpc_port": grpc_port,
            "metrics_port": metrics_port,
            "parallel_workers": parallel_workers,
            "http_workers": _frontends(frontends),
            "debug": debug,
            "debug_all": debug_all,
            "debug_loggers": debug_logger or None,
            "exit_on_error": fatal_errors,
            "build_environments": False if no_build_envs else None,
        }.items()
        if value is not None
    }
    if settings_path is not None:
        if not settings_path.is_file():
            typer.secho(
                f"Error: --settings {settings_path}: no such file", err=True, fg=typer.colors.RED
            )
            raise typer.Exit(USAGE_ERROR)
        settings_file: Path | None = settings_path
    else:
        default_file = folder / SETTINGS_FILENAME
        settings_file = default_file if default_file.is_file() else None
    with exit_on_error(USAGE_ERROR):
        settings = Settings.resolve(settings_file, overrides)
    from ..server.logging import configure_logging

    log_options: dict[str, Any] = {
        "debug": settings.debug,
        "structured": settings.use_structured_logging,
        "logging_settings": _relative_to(
            settings_file.parent if settings_file else folder, settings.logging_settings
        ),
        "debug_all": settings.debug_all,
        "debug_loggers": settings.debug_loggers,
    }
    with exit_on_error(USAGE_ERROR):
        configure_logging(**log_options)
    _log_notices(settings.notices)
    import os

    from ..compat import COMPAT_ENV, install_mlserver_compat

    os.environ[COMPAT_ENV] = "1" if settings.mlserver_compat else "0"  # worker processes inherit it
    install_mlserver_compat()  # here too: errors of mlserver.errors cross back from workers
    root = (folder / settings.model_repository_root).resolve()
    with exit_on_error(USAGE_ERROR):
        env_model = ModelSettings.from_environment(folder)
    # A model the environment describes fully (implementation and uri: KServe's way) replaces
    # the folder's models, so any mlpack image is a drop-in for KServe's MLServer runtime.
    if model_from_env or (env_model is not None and env_model.parameters.uri):
        if env_model is None:
            typer.secho(
                "Error: --model-from-env needs MLPACK_MODEL_IMPLEMENTATION "
                "(or MLSERVER_MODEL_IMPLEMENTATION)",
                err=True,
                fg=typer.colors.RED,
            )
            raise typer.Exit(USAGE_ERROR)
        models: list[ModelSettings] = [env_model]
        problems: list[SettingsProblem] = []  # nothing is read from files
    else:
        models, problems = discover_models(root)
    if not models and not problems:
        if env_model is None:
            typer.secho(
                f"Error: no model-settings.json found below {root}, and no "
                "MLPACK_MODEL_IMPLEMENTATION (or MLSERVER_MODEL_IMPLEMENTATION) describes a model",
                err=True,
                fg=typer.colors.RED,
            )
            raise typer.Exit(USAGE_ERROR)
        models = [env_model]
    for model in models:
        _log_notices(model.notices)
    if env_model is not None and models == [env_model]:
        where = env_model.parameters.uri or "the model folder"
        _log_notices(
            [
                (
                    20,
                    f"serving model '{env_model.name}' ({env_model.implementation}) "
                    f"described by the environment, artefact at {where}",
                )
            ]
        )
    if problems and settings.exit_on_error:
        for problem in problems:
            typer.secho(
                f"Error: invalid {problem.path}: {problem.reason}", err=True, fg=typer.colors.RED
            )
        typer.secho(
            f"Error: {len(problems)} model settings file(s) invalid; exit_on_error is set",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(STARTUP_FAILURE)
    from ..server.frontends import frontend_count

    count = frontend_count(settings.http_workers)
    if plan:
        print_plan(models, settings.parallel_workers, count)
        return
    if count > 1:
        from ..server.frontends import run_supervisor

        with exit_on_error(STARTUP_FAILURE):
            code = run_supervisor(settings, models, root, count, log_options)
        if code:
            raise typer.Exit(code)
        return
    server = MLPackServer(settings, models, repository_root=root)
    with exit_on_error(STARTUP_FAILURE):
        run_server(server)


def _frontends(value: str | None) -> int | str | None:
    """``--frontends``: a positive number or ``auto`` (settings validate the number)."""
    if value is None or value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise typer.BadParameter(
            f"'{value}' is not a number of processes or 'auto'", param_hint="--frontends"
        ) from None


def print_plan(models: list[Any], default_workers: int, frontends: int = 1) -> None:
    """``--plan``: each place models run, its processes, its models and its memory.

    With several front-ends, each pool is listed once: the supervisor owns it and every
    front-end calls its workers; in-process models load once per front-end."""
    import asyncio

    from ..engine.plan import estimate, measure_models
    from ..engine.pools import describe_pool

    measured = asyncio.run(measure_models(models))
    typer.echo(f"plan: {len(models)} model(s), server parallel_workers={default_workers}")
    if frontends > 1:
        typer.echo(
            f"  {frontends} front-end processes: each worker pool below is shared by all of "
            f"them (one copy); in-process models load once per front-end ({frontends} copies)"
        )
    total = 0
    for item in estimate(models, default_workers, measured):
        memory = "not measured" if item.memory is None else _mib(item.memory)
        typer.echo(f"  {describe_pool(item.pool.choice, item.pool.models)}  [~{memory}]")
        total += item.memory or 0
    for name, size in measured.models.items():
        detail = _mib(size) if size is not None else measured.problems.get(name, "")
        typer.echo(f"    model {name}: {detail}")
    typer.echo(
        f"  estimated memory: ~{_mib(total)} plus the server process "
        f"(a bare worker process: {_mib(measured.process)} of its own)"
    )


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def _log_notices(notices: list[tuple[int, str]]) -> None:
    import logging

    logger = logging.getLogger("mlpack.settings")
    for level, message in notices:
        logger.log(level, "%s", message)


def _relative_to(folder: Path, logging_settings: Any) -> Any:
    """A relative ``logging_settings`` path is looked up next to settings.json first."""
    if isinstance(logging_settings, str) and not Path(logging_settings).is_absolute():
        candidate = folder / logging_settings
        if candidate.is_file():
            return str(candidate)
    return logging_settings
