"""The ``mlpack`` command: one Typer sub-module per command, composed here.

Command modules are imported only when the app is built, and heavy libraries only
inside the command that needs them, so ``mlpack --help`` stays fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from .._version import __version__
from ._help import quiet_flags


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"mlpack {__version__}")
        raise typer.Exit()


def create_app() -> typer.Typer:
    app = typer.Typer(
        name="mlpack",
        help="Serve, package and batch-run machine-learning models over the Open Inference"
        " Protocol.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def root(
        version: Annotated[
            bool | None,
            typer.Option(
                "--version", callback=_version_callback, is_eager=True, help="Show the version."
            ),
        ] = None,
    ) -> None:
        """mlpack: from a model folder to a production V2 inference service."""

    from . import bench, build, deploy, env, infer, init, start, tune

    init.register(app)
    start.register(app)
    infer.register(app)
    build.register(app)
    env.register(app)
    deploy.register(app)
    bench.register(app)
    tune.register(app)
    quiet_flags(app)
    return app


def main() -> None:
    create_app()()
