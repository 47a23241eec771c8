"""``mlpack deploy FOLDER --target kubernetes|kserve|knative``: render manifests offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .errors import USAGE_ERROR, exit_on_error


def register(app: typer.Typer) -> None:
    app.command(name="deploy")(deploy)


def deploy(
    folder: Annotated[
        Path, typer.Argument(help="The served folder (as for `mlpack start` / `mlpack build`).")
    ] = Path("."),
    target: Annotated[
        str, typer.Option("--target", "-T", help="kubernetes, kserve or knative.")
    ] = "kubernetes",
    image: Annotated[
        str | None, typer.Option("--image", "-i", help="The image `mlpack build` made.")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Object name (default: the model's name).")
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Namespace of the objects.")
    ] = None,
    values_file: Annotated[
        Path | None,
        typer.Option("--values", "-f", help="YAML/JSON values file (flags win over it)."),
    ] = None,
    replicas: Annotated[int | None, typer.Option(help="Replicas (kubernetes).")] = None,
    min_replicas: Annotated[int | None, typer.Option(help="Autoscaler minimum.")] = None,
    max_replicas: Annotated[int | None, typer.Option(help="Autoscaler maximum.")] = None,
    scale_on: Annotated[
        str | None,
        typer.Option(help="HPA signal: cpu, or in_flight (per-pod model_requests_in_flight)."),
    ] = None,
    keda: Annotated[
        bool | None,
        typer.Option("--keda/--no-keda", help="A KEDA ScaledObject instead of an HPA."),
    ] = None,
    storage_uri: Annotated[
        str | None, typer.Option(help="KServe storageUri of the model artefact.")
    ] = None,
    implementation: Annotated[
        str | None, typer.Option(help="Model class when the model comes from storage_uri.")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write one file per object into this folder (default: stdout)."
        ),
    ] = None,
) -> None:
    """Render Kubernetes, KServe or Knative manifests for FOLDER's image (no cluster needed)."""
    from ..deploy import TARGETS, load_values, render_manifests, to_yaml
    from ..deploy.render import write_folder

    if target not in TARGETS:
        typer.secho(
            f"Error: --target must be one of {', '.join(TARGETS)}, got {target!r}",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(USAGE_ERROR)
    if scale_on is not None and scale_on not in ("cpu", "in_flight"):
        typer.secho(
            f"Error: --scale-on must be cpu or in_flight, got {scale_on!r}",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(USAGE_ERROR)
    if not folder.is_dir():
        typer.secho(f"Error: {folder} is not a folder", err=True, fg=typer.colors.RED)
        raise typer.Exit(USAGE_ERROR)
    autoscaling = {
        k: v
        for k, v in {
            "min_replicas": min_replicas,
            "max_replicas": max_replicas,
            "metric": scale_on,
            "keda": keda,
        }.items()
        if v is not None
    }
    flags: dict[str, Any] = {
        "name": name,
        "image": image,
        "namespace": namespace,
        "replicas": replicas,
        "storage_uri": storage_uri,
        "implementation": implementation,
        "autoscaling": autoscaling or None,
    }
    with exit_on_error(USAGE_ERROR):
        values = load_values(values_file, _project_values(folder), flags)
        manifests = render_manifests(values, target)
    if output is None:
        typer.echo(to_yaml(manifests), nl=False)
        return
    for path in write_folder(manifests, output):
        typer.echo(f"wrote {path}")


def _project_values(folder: Path) -> dict[str, Any]:
    """What the project's own settings say: ports, drain and graceful timeouts, the model."""
    from ..engine.repository import discover_models
    from ..settings import SETTINGS_FILENAME, Settings

    settings_file = folder / SETTINGS_FILENAME
    settings = Settings.resolve(settings_file if settings_file.is_file() else None, environ={})
    project: dict[str, Any] = {
        "http_port": settings.http_port,
        "metrics_port": settings.metrics_port,
        "graceful_timeout": settings.graceful_timeout,
        "version": settings.server_version,
    }
    if settings_file.is_file():
        project["grpc_port"] = settings.grpc_port
        if settings.drain_delay:
            project["drain_delay"] = settings.drain_delay
        if settings.parallel_workers:
            project["parallel_workers"] = settings.parallel_workers
    models, _ = discover_models((folder / settings.model_repository_root).resolve())
    if models:
        project["model_name"] = models[0].name
        project["baked_implementation"] = models[0].implementation
    return project
