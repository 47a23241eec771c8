"""``mlpack init [DIR]``: a new model project from a bundled template."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from .errors import USAGE_ERROR, exit_on_error


def register(app: typer.Typer) -> None:
    app.command(name="init")(init)


def init(
    directory: Annotated[
        Path | None, typer.Argument(help="Folder to create (default: ./NAME).", show_default=False)
    ] = None,
    template: Annotated[
        str | None,
        typer.Option("--template", help="Template name (see --list).", show_default=False),
    ] = None,
    template_short: Annotated[
        str | None, typer.Option("-t", hidden=True, help="Old spelling of --template.")
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(help="Model name (default: the folder's name).", show_default=False),
    ] = None,
    batching: Annotated[
        bool | None,
        typer.Option(
            "--batching/--no-batching", help="Turn on adaptive batching.", show_default=False
        ),
    ] = None,
    no_input: Annotated[
        bool, typer.Option("--no-input", help="Ask nothing; use flags and defaults.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Write into a folder that is not empty.")
    ] = False,
    list_templates: Annotated[
        bool, typer.Option("--list", help="List the templates and exit.")
    ] = False,
) -> None:
    """Create a model project: settings, model code, requirements, a test, a README."""
    from .. import scaffold

    if template_short is not None:
        # `-t` means an image tag (build, as in `docker build`) and a transport (infer, as in
        # `mlserver infer`); for init it is kept working but no longer advertised.
        typer.secho("note: use --template; -t is the old spelling for `mlpack init`", err=True)
        template = template or template_short
    if list_templates:
        for item in scaffold.list_templates():
            typer.echo(f"{item.name:<10} {item.description}")
        return
    interactive = not no_input and _stdin_is_tty()
    if interactive:
        if name is None:
            name = typer.prompt(
                "Model name",
                default=scaffold.default_name(directory) if directory else scaffold.DEFAULT_NAME,
            )
        if template is None:
            template = _prompt_template([item.name for item in scaffold.list_templates()])
        if batching is None:
            batching = typer.confirm("Turn on adaptive batching?", default=False)
    if name is None:
        name = scaffold.default_name(directory) if directory else scaffold.DEFAULT_NAME
    directory = directory if directory is not None else Path(name)
    options = scaffold.ProjectOptions(
        template=template or scaffold.DEFAULT_TEMPLATE, name=name, batching=bool(batching)
    )
    with exit_on_error(USAGE_ERROR):
        files = scaffold.render_project(options)
        scaffold.write_project(directory, files, force=force)
    train = scaffold.get_template(options.template).train
    _print_next_steps(directory, options.name, options.template, train)


def _prompt_template(choices: list[str]) -> str:
    """Ask for a template until the answer is one of ``choices``."""
    from ..scaffold import DEFAULT_TEMPLATE

    while True:
        answer: str = typer.prompt(f"Template ({', '.join(choices)})", default=DEFAULT_TEMPLATE)
        if answer in choices:
            return answer
        typer.secho(
            f"'{answer}' is not one of: {', '.join(choices)}", err=True, fg=typer.colors.RED
        )


def _print_next_steps(directory: Path, name: str, template: str, train: bool) -> None:
    typer.secho(f"Created {directory} ({template} template, model '{name}')", fg=typer.colors.GREEN)
    # pytest is the project's test runner, not a run-time need of the model.
    steps = [f"cd {shlex.quote(str(directory))}", "pip install -r requirements.txt pytest"]
    if train:
        steps.append("python train.py")
    steps += ["pytest", "mlpack start ."]
    typer.echo("Next:\n" + "\n".join(f"  {step}" for step in steps))
    typer.echo("Then send README.md's example request.")


def _stdin_is_tty() -> bool:
    return sys.stdin.isatty()
