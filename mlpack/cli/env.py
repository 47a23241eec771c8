"""``mlpack env pack FOLDER``: pack a model's environment for ``mlpack start``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .errors import USAGE_ERROR, exit_on_error
from .sizes import human_size


def register(app: typer.Typer) -> None:
    env_app = typer.Typer(name="env", help="Per-model environments.", no_args_is_help=True)
    env_app.command(name="pack")(pack)
    env_app.command(name="unpack")(unpack)
    app.add_typer(env_app)


def pack(
    folder: Annotated[
        Path, typer.Argument(help="A model folder with requirements.txt or environment.yml.")
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "-o", "--output", help="Tarball to write (default FOLDER/environment.tar.gz)."
        ),
    ] = None,
) -> None:
    """Pack FOLDER's environment into a relocatable tarball (parameters.environment_tarball)."""
    from ..distribution import check_requirements_file
    from ..environments.files import CONDA_FILES, REQUIREMENTS_FILES
    from ..environments.pack import pack_conda, pack_requirements

    output = output or folder / "environment.tar.gz"
    requirements = [folder / n for n in REQUIREMENTS_FILES if (folder / n).is_file()]
    conda = [folder / n for n in CONDA_FILES if (folder / n).is_file()]
    if not requirements and not conda:
        typer.secho(
            f"Error: {folder} has no {' / '.join(REQUIREMENTS_FILES + CONDA_FILES)}",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(USAGE_ERROR)
    with exit_on_error():
        if requirements and not conda:
            check_requirements_file(requirements[0])
        if conda:
            written = pack_conda(conda[0], output)
        else:
            written = pack_requirements(requirements[0], output)
    typer.echo(f"packed {written} ({human_size(written.stat().st_size)})")
    typer.echo(f'use it with "parameters": {{"environment_tarball": "{written.name}"}}')


def unpack(
    tarball: Annotated[
        Path, typer.Argument(help="An environment tarball (conda-pack or mlpack env pack).")
    ],
    environments_dir: Annotated[Path, typer.Option(help="Where environments are unpacked.")] = Path(
        ".mlpack/envs"
    ),
    name: Annotated[
        str | None,
        typer.Option(help="Folder name inside ENVIRONMENTS_DIR (default: the tarball's sha256)."),
    ] = None,
    max_bytes: Annotated[int, typer.Option(min=1, help="Most bytes the tarball may unpack to.")] = 8
    << 30,
    max_files: Annotated[
        int, typer.Option(min=1, help="Most members the tarball may hold.")
    ] = 100_000,
    max_path_length: Annotated[int, typer.Option(min=1, help="Longest member path.")] = 1024,
    max_ratio: Annotated[
        float, typer.Option(min=1, help="Most unpacked bytes per compressed byte.")
    ] = 200.0,
) -> None:
    """Unpack TARBALL once into ENVIRONMENTS_DIR (as `mlpack start` does) and print its path."""
    from ..environments import ExtractionLimits, check_python_version, unpack_environment

    limits = ExtractionLimits(
        max_bytes=max_bytes,
        max_files=max_files,
        max_path_length=max_path_length,
        max_ratio=max_ratio,
    )
    with exit_on_error():
        environment = unpack_environment(
            tarball.resolve(), environments_dir.resolve(), name, limits
        )
        check_python_version(environment.python)
    typer.echo(str(environment.root))
