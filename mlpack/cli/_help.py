"""Help output without type noise: plain switches show no ``<bool>`` (nor counters ``<int>``)."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption


def _quiet(params: list[Any]) -> list[Any]:
    for param in params:
        if isinstance(param, TyperOption) and (param.is_flag or param.count):
            param.metavar = ""  # Typer shows the metavar, when set, instead of the value type
    return params


class QuietFlagsCommand(TyperCommand):
    """A Typer command whose flags take no value and so show no value type in ``--help``."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _quiet(super().get_params(ctx))


class QuietFlagsGroup(TyperGroup):
    """A Typer group (``mlpack``, ``mlpack env``) with the same quiet flags."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _quiet(super().get_params(ctx))


def quiet_flags(app: typer.Typer) -> None:
    """Give ``app``, its commands and its sub-apps the quiet-flags classes."""
    if app.info.cls in (None, TyperGroup) or not isinstance(app.info.cls, type):
        app.info.cls = QuietFlagsGroup
    for group in app.registered_groups:
        if group.typer_instance is not None:
            quiet_flags(group.typer_instance)
    for command in app.registered_commands:
        if command.cls in (None, TyperCommand):
            command.cls = QuietFlagsCommand
