"""``mlpack dockerfile FOLDER`` and ``mlpack build FOLDER -t TAG``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .errors import USAGE_ERROR, exit_on_error
from .sizes import human_size


def register(app: typer.Typer) -> None:
    app.command(name="dockerfile")(dockerfile)
    app.command(name="build")(build)


def _check_folder(folder: Path) -> None:
    if not folder.is_dir():
        typer.secho(f"Error: {folder} is not a folder", err=True, fg=typer.colors.RED)
        raise typer.Exit(USAGE_ERROR)


def dockerfile(
    folder: Annotated[
        Path, typer.Argument(help="The folder to serve (as for `mlpack start`).")
    ] = Path("."),
    include_dockerignore: Annotated[
        bool, typer.Option("-i", "--include-dockerignore", help="Also write a .dockerignore.")
    ] = False,
    base_image: Annotated[
        str | None, typer.Option(help="Base image (Python 3.11 with venv).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing Dockerfile / .dockerignore.")
    ] = False,
) -> None:
    """Write the Dockerfile `mlpack build` uses into FOLDER, to read or customise."""
    from ..packaging.dockerfile import render_dockerfile, render_dockerignore
    from ..packaging.plan import DEFAULT_BASE_IMAGE, plan_image

    _check_folder(folder)
    targets = [folder / "Dockerfile", *([folder / ".dockerignore"] if include_dockerignore else [])]
    existing = [str(path) for path in targets if path.exists()]
    if existing and not force:
        typer.secho(
            f"Error: {' and '.join(existing)} already exist{'s' if len(existing) == 1 else ''}"
            " (perhaps customised): pass --force to overwrite",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(1)
    with exit_on_error():
        plan = plan_image(folder, base_image or DEFAULT_BASE_IMAGE)
        (folder / "Dockerfile").write_text(render_dockerfile(plan))
        typer.echo(f"wrote {folder / 'Dockerfile'}")
        if include_dockerignore:
            (folder / ".dockerignore").write_text(render_dockerignore(plan))
            typer.echo(f"wrote {folder / '.dockerignore'}")
    typer.echo(
        f"build it with: mlpack build {folder} -t IMAGE (it uses this Dockerfile;"
        " --regenerate renders a fresh one)"
    )


def build(
    folder: Annotated[
        Path, typer.Argument(help="The folder to serve (as for `mlpack start`).")
    ] = Path("."),
    tag: Annotated[str, typer.Option("-t", "--tag", help="Image name and tag.")] = "",
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Do not use the engine's layer cache.")
    ] = False,
    base_image: Annotated[
        str | None,
        typer.Option(
            help="Base image with Python 3.11 and venv (default python:3.11-slim-bookworm)."
        ),
    ] = None,
    build_arg: Annotated[
        list[str] | None,
        typer.Option("--build-arg", help="KEY=VALUE passed to the Dockerfile (repeatable)."),
    ] = None,
    dockerfile_path: Annotated[
        Path | None,
        typer.Option(
            "--dockerfile", help="Use this (customised) Dockerfile instead of rendering one."
        ),
    ] = None,
    regenerate: Annotated[
        bool,
        typer.Option("--regenerate", help="Render a fresh Dockerfile even when FOLDER has one."),
    ] = False,
) -> None:
    """Build a Docker image serving FOLDER; everything it installs is prepared on this host."""
    from ..packaging.image import build_image
    from ..packaging.plan import DEFAULT_BASE_IMAGE, plan_image
    from ..packaging.references import check_tag

    _check_folder(folder)
    if not tag:
        typer.secho("Error: give the image a name with -t/--tag", err=True, fg=typer.colors.RED)
        raise typer.Exit(USAGE_ERROR)
    with exit_on_error(USAGE_ERROR):
        check_tag(tag)  # before any work
    arguments: dict[str, str] = {}
    for item in build_arg or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            typer.secho(
                f"Error: --build-arg expects KEY=VALUE, got {item!r}", err=True, fg=typer.colors.RED
            )
            raise typer.Exit(USAGE_ERROR)
        arguments[key] = value
    with exit_on_error():
        plan = plan_image(folder, base_image or DEFAULT_BASE_IMAGE)
        _check_requirements(plan)
        text = dockerfile_path.read_text() if dockerfile_path else None
        if text is None and not regenerate and (folder / "Dockerfile").is_file():
            text = (folder / "Dockerfile").read_text()
            typer.echo(
                f"using {folder / 'Dockerfile'} (found in the folder; --regenerate renders a"
                " fresh one from the models)"
            )
        result = build_image(
            plan, tag, typer.echo, no_cache=no_cache, build_args=arguments, dockerfile=text
        )
    typer.secho(
        f"built {tag}: image {result.image_id}, {human_size(result.size)},"
        f" in {result.seconds:.1f}s",
        fg=typer.colors.GREEN,
    )


def _check_requirements(plan: Any) -> None:
    """Refuse, before any work, a requirements file that would install the foreign ``mlpack``."""
    from ..distribution import check_requirements_file

    sources = [plan.root_requirements] + [env.source for env in plan.environments]
    for source in sources:
        if source is not None and source.name.endswith(".txt"):
            check_requirements_file(source)
