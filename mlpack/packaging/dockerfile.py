"""Render an ``ImagePlan`` as a Dockerfile and a .dockerignore.

Pure: the same (frozen) plan always renders the same text, and rendering needs no
Docker. ``mlpack dockerfile`` writes this text; ``mlpack build`` sends the same text to
the engine (unless given a customised Dockerfile).
"""

from __future__ import annotations

from .._version import __version__
from ..templating import template_environment
from .plan import PREFIX, UID, ImagePlan


def render_dockerfile(plan: ImagePlan) -> str:
    """The Dockerfile for ``plan`` (conda environments arrive packed, as tarballs)."""
    return (
        template_environment()
        .get_template("Dockerfile.j2")
        .render(
            version=__version__,
            base_image=plan.base_image,
            prefix=PREFIX,
            uid=UID,
            environments=plan.environments,
            models=plan.models,
            settings_file=plan.settings_file,
            http_port=plan.http_port,
            grpc_port=plan.grpc_port,
            metrics_port=plan.metrics_port,
        )
    )


def render_dockerignore(plan: ImagePlan) -> str:
    """The default .dockerignore (used when the served folder has none)."""
    return template_environment().get_template("dockerignore.j2").render(version=__version__)
